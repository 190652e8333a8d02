"""The run directory: its layout (DESIGN.md), a writability check, and refusing to clobber."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from edgekd.errors import RunDirError
from edgekd.pipeline.manifest import MANIFEST_NAME

# The files of the run itself; each stage module names the folders it writes (its OWNS), and
# --force removes only these files and those folders.
RUN_FILES = (MANIFEST_NAME, "report.json", "report.md", "report.html", "junit.xml", "edgekd.log")
MADE = ("distill", "export", "build", "validate")  # made up front (search/, device/ on demand)


class RunDir:
    """Paths of one run. `prepare()` checks the directory before any work starts."""

    def __init__(self, root: str | os.PathLike, folders: tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        self.folders = folders  # the folders the stages write: --force cleans them

    def __truediv__(self, rel: str) -> Path:
        return self.root / rel

    def path(self, rel: str) -> Path:
        """The path of `rel` inside the run directory."""
        return self.root / rel

    def rel(self, p: str | os.PathLike) -> str:
        """`p` relative to the run directory (how records and reports name files)."""
        return str(Path(p).relative_to(self.root))

    def prepare(self, *, resume: bool, force: bool, inputs: tuple[Path, ...] = ()) -> None:
        """Check the directory before any work: never `/` or the home directory; writable; an
        earlier run only with --resume or --force; --force deletes only the run's own files
        and folders, and refuses when one of `inputs` (the teacher file, the data folder) lies
        among them."""
        root = self.root.expanduser().resolve()
        if root == Path(root.anchor) or root == Path.home().resolve():
            raise RunDirError(
                "refusing to use this folder as the run directory (its stage folders would be "
                "created, and with --force removed, there)",
                value=str(self.root),
                fix="pass --out a folder of its own, e.g. runs/NAME",
            )
        if force and not resume:
            self._check_inputs_survive(inputs)
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
            for name in (*self.folders, *RUN_FILES):
                p = self.root / name
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
        for sub in MADE:
            (self.root / sub).mkdir(exist_ok=True)

    def _check_inputs_survive(self, inputs: tuple[Path, ...]) -> None:
        for name in (*self.folders, *RUN_FILES):
            doomed = (self.root / name).resolve()
            if not (self.root / name).exists():
                continue
            for f in inputs:
                fp = Path(f).expanduser().resolve()
                if fp == doomed or doomed in fp.parents:
                    raise RunDirError(
                        "--force would delete an input of this run",
                        value=str(f),
                        fix=f"move it out of {self.root / name} or pass another --out",
                    )
