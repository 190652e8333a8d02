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
from edgekd.errors import RunDirError

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass
class StageRecord:
    name: str
    key: str
    status: str  # running | finished | failed
    inputs: dict = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)  # path relative to run dir -> sha256
    written: list[str] = field(default_factory=list)  # every file it created in its folders
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
        self._t0 = time.perf_counter()

    @classmethod
    def load(cls, run_dir: Path) -> Manifest:
        """The manifest in run_dir (empty when there is none); a damaged one is one line."""
        m = cls(run_dir)
        if m.path.exists():
            try:
                raw = json.loads(m.path.read_text())
                m.run = dict(raw.get("run", {}))
                m.stages = {s["name"]: StageRecord(**s) for s in raw.get("stages", [])}
            except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as e:
                raise RunDirError(
                    "manifest.json is unreadable (truncated or edited?)",
                    value=str(m.path),
                    fix=f"{type(e).__name__}; pass --force to start the run over, or another "
                    "--out",
                ) from None
        return m

    def listed(self) -> list[str]:
        """Every file the manifest says the run wrote (outputs and other written files),
        relative to the run directory."""
        names: dict[str, None] = {}
        for rec in self.stages.values():
            names.update(dict.fromkeys(rec.outputs))
            names.update(dict.fromkeys(rec.written))
        return list(names)

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

    def relative(self, paths: list[Path]) -> list[str]:
        return [str(Path(p).relative_to(self.run_dir)) for p in paths]

    def hash_outputs(self, paths: list[Path]) -> dict[str, str]:
        return {rel: sha256_file(self.run_dir / rel) for rel in self.relative(paths)}

    @classmethod
    def open(cls, run_dir: Path, *, resume: bool, facts: dict) -> Manifest:
        """The run's manifest (the earlier one on resume, its stage records kept), with the
        run facts of this invocation, the versions and the start time."""
        m = cls.load(run_dir) if resume else cls(run_dir)
        m.run = facts | {"versions": versions(), "started_at": now()}
        return m

    def finish(self, ran: list[str], reused: list[str]) -> None:
        """Add the wall time and which stages ran and which were reused; save."""
        self.run["wall_s"] = time.perf_counter() - self._t0
        self.run["stages_ran"], self.run["stages_reused"] = ran, reused
        self.save()


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on, recorded in its manifest and report."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import onnx
    import onnxruntime
    import timm
    import torch

    from edgekd import __version__

    try:
        modelopt_v = version("nvidia-modelopt")
    except PackageNotFoundError:
        modelopt_v = "unknown"
    return {
        "edgekd": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "nvidia-modelopt": modelopt_v,
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
    }
