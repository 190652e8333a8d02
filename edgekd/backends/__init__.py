"""Runtime backends, one file each; every backend compiles an ONNX file into an `Artifact`."""

from edgekd.backends.base import Artifact

__all__ = ["Artifact"]
