"""`verify`: re-hash every file a run recorded and report what no longer matches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from edgekd._io import sha256_file
from edgekd.errors import RunDirError
from edgekd.pipeline.manifest import MANIFEST_NAME, Manifest


@dataclass(frozen=True)
class Mismatch:
    path: str
    stage: str
    problem: str  # missing | changed


def verify_run(run_dir: str | Path) -> tuple[int, list[Mismatch]]:
    """(files checked, mismatches) for the finished run in `run_dir`; an incomplete run (a
    stage not finished, or no report.json) is a RunDirError naming where it stopped."""
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST_NAME).is_file():
        raise RunDirError(
            "no manifest.json in the run directory",
            value=str(run_dir),
            fix="pass the --out folder of an edgekd compress run",
        )
    manifest = Manifest.load(run_dir)  # a damaged one is a RunDirError line
    unfinished = [r for r in manifest.stages.values() if r.status != "finished"]
    if unfinished or not (run_dir / "report.json").is_file():
        where = (f"it stopped in stage {unfinished[0].name} ({unfinished[0].status})"
                 if unfinished else "it has no report.json")  # fmt: skip
        done = [r.name for r in manifest.stages.values() if r.status == "finished"]
        raise RunDirError(
            f"the run is incomplete: {where}; finished stages: {', '.join(done) or 'none'}",
            value=str(run_dir),
            fix="continue it with edgekd compress ... --out RUN --resume",
        )
    expected: dict[str, tuple[str, str]] = {}  # path -> (sha256, who recorded it)
    for rec in manifest.stages.values():
        for rel, digest in rec.outputs.items():
            expected[rel] = (digest, rec.name)
    report = run_dir / "report.json"
    if report.is_file():  # the shipped artifact, as the report names it
        art = json.loads(report.read_text()).get("artifact", {})
        if art.get("path") and art.get("sha256"):
            expected.setdefault(art["path"], (art["sha256"], "report"))
    bad = []
    for rel, (digest, stage) in expected.items():
        p = run_dir / rel
        if not p.is_file():
            bad.append(Mismatch(rel, stage, "missing"))
        elif sha256_file(p) != digest:
            bad.append(Mismatch(rel, stage, "changed"))
    return len(expected), bad
