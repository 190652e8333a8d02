"""Running one stage module: reuse a finished record on resume, else run it and record it.

A stage's key is `sha256_json({"own": stage.key(ctx, plan), "upstream": {...}})`: its own
settings plus, for every upstream result it is handed, the hashes the manifest recorded for
that result's output files when they were written. So a stage reruns when its settings change
or when anything it reads changed, and no stage hashes files into its key by hand.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from edgekd._io import sha256_json
from edgekd.pipeline.events import Reporter
from edgekd.pipeline.manifest import Manifest, StageRecord, now


class StageRunner:
    def __init__(self, manifest: Manifest, reporter: Reporter, *, resume: bool) -> None:
        self.manifest = manifest
        self.reporter = reporter
        self.resume = resume
        self.ran: list[str] = []
        self.reused: list[str] = []

    def upstream_hashes(self, upstream: tuple) -> dict[str, dict[str, str]]:
        """{stage name: {output path: sha256}} of each upstream result, from the manifest."""
        out = {}
        for r in upstream:
            rec = self.manifest.stages[r.NAME]
            rels = self.manifest.relative(r.outputs())
            out[r.NAME] = {rel: rec.outputs[rel] for rel in rels}
        return out

    def run(self, stage, ctx, plan, *upstream) -> Any:
        """`stage.run(ctx, plan, *upstream)` unless a finished record with the same key and
        intact outputs can be reused; returns the stage's result either way."""
        inputs = {"own": stage.key(ctx, plan), "upstream": self.upstream_hashes(upstream)}
        key = sha256_json(inputs)
        name = stage.NAME
        if self.resume and (rec := self.manifest.reusable(name, key)) is not None:
            self.reused.append(name)
            self.reporter.stage_end(name, "unchanged inputs, reused", skipped=True)
            return stage.Result.from_record(rec.info, ctx.run)
        earlier = self.manifest.stages.get(name)
        rec = StageRecord(name, key, "running", inputs=inputs, started_at=now())
        rec.written = list(earlier.written) if earlier else []
        self.manifest.stages[name] = rec
        self.manifest.save()
        self.reporter.stage_start(name, stage.describe(ctx, plan))
        before = _files(ctx.run.root, stage.OWNS)
        t0 = time.perf_counter()
        try:
            result = stage.run(dataclasses.replace(ctx, stage_key=key), plan, *upstream)
        except BaseException as e:
            why = e.one_line() if hasattr(e, "one_line") else f"{type(e).__name__}: {e}"
            self.reporter.log_only(f"stage {name}: failed: {' '.join(why.split())[:300]}")
            rec.status = "failed"
            rec.wall_s = time.perf_counter() - t0
            _note_written(rec, before, _files(ctx.run.root, stage.OWNS))
            self.manifest.save()
            raise
        _note_written(rec, before, _files(ctx.run.root, stage.OWNS))
        rec.outputs = self.manifest.hash_outputs(result.outputs())
        rec.info = result.to_record()
        rec.status = "finished"
        rec.wall_s = time.perf_counter() - t0
        rec.finished_at = now()
        self.manifest.save()
        self.ran.append(name)
        self.reporter.stage_end(name, rec.info.get("summary", ""), skipped=False)
        return result


def _files(root, folders: tuple[str, ...]) -> set[str]:
    """The files under the given run folders, relative to the run directory."""
    found: set[str] = set()
    for folder in folders:
        base = root / folder
        if base.is_dir() and not base.is_symlink():
            found.update(str(p.relative_to(root)) for p in base.rglob("*") if p.is_file())
    return found


def _note_written(rec: StageRecord, before: set[str], after: set[str]) -> None:
    """Record the files this stage created (what --force may delete later): those it made
    now, plus those an earlier attempt made that still exist."""
    rec.written = sorted((set(rec.written) & after) | (after - before))
