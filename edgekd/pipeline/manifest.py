"""The run's manifest: one `StageRecord` per stage, with the hashes that make `--resume` safe.

A stage is skipped on resume only when its record is finished, its key (a hash of every input:
config values and the sha256 of input files) is unchanged, and each output file on disk still
has the sha256 recorded when it was written.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekd._io import sha256_file, write_json

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass
class StageRecord:
    name: str
    key: str
    status: str  # running | finished | failed
    inputs: dict = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # path relative to run dir -> sha256
    info: dict = field(default_factory=dict)
    wall_s: float = 0.0
    started_at: str = ""
    finished_at: str = ""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Manifest:
    """Stage records plus run-level facts (versions, seed, config), saved atomically."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / MANIFEST_NAME
        self.run: dict = {}
        self.stages: dict[str, StageRecord] = {}

    @classmethod
    def load(cls, run_dir: Path) -> Manifest:
        m = cls(run_dir)
        if m.path.exists():
            raw = json.loads(m.path.read_text())
            m.run = raw.get("run", {})
            m.stages = {s["name"]: StageRecord(**s) for s in raw.get("stages", [])}
        return m

    def save(self) -> None:
        write_json(
            self.path,
            {
                "manifest_version": MANIFEST_VERSION,
                "run": self.run,
                "stages": [asdict(s) for s in self.stages.values()],
            },
        )

    def reusable(self, name: str, key: str) -> StageRecord | None:
        """The finished record of `name` if its key matches and its outputs are intact."""
        rec = self.stages.get(name)
        if rec is None or rec.status != "finished" or rec.key != key:
            return None
        for rel, digest in rec.outputs.items():
            p = self.run_dir / rel
            if not p.is_file() or sha256_file(p) != digest:
                return None
        return rec

    def hash_outputs(self, paths: list[Path]) -> dict[str, str]:
        return {str(Path(p).relative_to(self.run_dir)): sha256_file(p) for p in paths}
