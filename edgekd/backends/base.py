"""What every runtime backend produces: an `Artifact` on disk, described well enough to deploy."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekd._io import sha256_file


@dataclass(frozen=True)
class Artifact:
    """A deployable file: what it is, its precision, what it was built for, and its hash."""

    path: Path
    format: str  # onnx | ort.onnx | trt-engine
    precision: str  # fp32 | fp16 | int8
    target: str
    toolchain: dict = field(default_factory=dict)
    sha256: str = ""

    @classmethod
    def of(cls, path: Path, fmt: str, precision: str, target: str, toolchain: dict) -> Artifact:
        return cls(Path(path), fmt, precision, target, dict(toolchain), sha256_file(path))

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        d["size_mb"] = self.size_mb
        return d
