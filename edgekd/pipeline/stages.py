"""Running one stage: reuse a finished record on resume, else run it and record what it wrote."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from edgekd._io import sha256_json
from edgekd.pipeline.events import Reporter
from edgekd.pipeline.manifest import Manifest, StageRecord, now

# A stage's work: given its key, returns (files written, JSON-able info for later stages).
StageFn = Callable[[str], tuple[list[Path], dict]]


class StageRunner:
    def __init__(self, manifest: Manifest, reporter: Reporter, *, resume: bool) -> None:
        self.manifest = manifest
        self.reporter = reporter
        self.resume = resume
        self.ran: list[str] = []
        self.reused: list[str] = []

    def run(self, name: str, description: str, inputs: dict, fn: StageFn) -> dict:
        key = sha256_json(inputs)
        if self.resume and (rec := self.manifest.reusable(name, key)) is not None:
            self.reused.append(name)
            self.reporter.stage_end(name, "unchanged inputs, reused", skipped=True)
            return rec.info
        rec = StageRecord(name, key, "running", inputs=inputs, started_at=now())
        self.manifest.stages[name] = rec
        self.manifest.save()
        self.reporter.stage_start(name, description)
        t0 = time.perf_counter()
        try:
            outputs, info = fn(key)
        except BaseException:
            rec.status = "failed"
            rec.wall_s = time.perf_counter() - t0
            self.manifest.save()
            raise
        rec.outputs = self.manifest.hash_outputs(outputs)
        rec.info = info
        rec.status = "finished"
        rec.wall_s = time.perf_counter() - t0
        rec.finished_at = now()
        self.manifest.save()
        self.ran.append(name)
        self.reporter.stage_end(name, info.get("summary", ""), skipped=False)
        return info
