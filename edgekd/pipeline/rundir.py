"""The run directory: its layout (DESIGN.md), a writability check, and refusing to clobber."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from edgekd.errors import RunDirError
from edgekd.pipeline.manifest import MANIFEST_NAME

# Everything edgekd writes in a run directory; --force removes only these.
OWNED = (
    "search",
    "distill",
    "export",
    "build",
    "validate",
    MANIFEST_NAME,
    "report.json",
    "report.md",
    "report.html",
    "junit.xml",
    "edgekd.log",
)


class RunDir:
    """Paths of one run. `prepare()` checks the directory before any work starts."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __truediv__(self, rel: str) -> Path:
        return self.root / rel

    def prepare(self, *, resume: bool, force: bool) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".edgekd-write-test.", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as e:
            raise RunDirError(
                "cannot write the run directory",
                value=str(self.root),
                fix=f"{e.strerror or e}; pass a writable --out",
            ) from None
        if (self.root / MANIFEST_NAME).exists() and not (resume or force):
            raise RunDirError(
                "run directory already holds a run",
                value=str(self.root),
                fix="pass --resume to continue it, --force to start over, or another --out",
            )
        if force and not resume:
            for name in OWNED:
                p = self.root / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        for sub in ("distill", "export", "build", "validate"):
            (self.root / sub).mkdir(exist_ok=True)
