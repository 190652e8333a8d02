"""The run directory: its layout (DESIGN.md), a writability check, and refusing to clobber."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edgekd.errors import RunDirError
from edgekd.pipeline.manifest import MANIFEST_NAME

# The files of the run itself; each stage module names the folders it writes (its OWNS), and
# --force removes only these files and those folders.
RUN_FILES = (MANIFEST_NAME, "report.json", "report.md", "report.html", "junit.xml", "edgekd.log")
MADE = ("distill", "export", "build", "validate")  # made up front (search/, device/ on demand)
# every stage's OWNS (edgekd.pipeline.stages.OWNED, which imports every stage and torch): the
# CLI's precheck uses this list so that it runs before those imports; a test keeps them equal
STAGE_FOLDERS = ("search", "distill", "export", "build", "validate", "device")
LOCK_NAME = ".edgekd.lock"
_HELD_LOCKS: dict[str, int] = {}  # run directory -> fd of its held lock file


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
        """Check and claim the directory before any work.

        Never `/` or the home directory; writable; locked for the whole run (a second run on
        it is refused); no symlinked run folder; a directory holding anything but an edgekd
        run is refused; an earlier run only with --resume or --force. --force deletes only
        the files the manifest lists, the run's own report files and the stage folders left
        empty, and refuses when one of `inputs` (the teacher file, the data folder) is among
        them or holds one of them."""
        self.precheck(resume=resume, force=force)
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
        self._lock()
        has_run = (self.root / MANIFEST_NAME).exists()
        self._refuse_a_run(has_run, resume, force)  # again, under the lock
        if resume and has_run:
            from edgekd.pipeline.manifest import Manifest

            Manifest.load(self.root)  # a damaged manifest is one line now, not mid-run
        if force and has_run:
            self._force_clean(inputs)
        for sub in MADE:
            (self.root / sub).mkdir(exist_ok=True)

    def precheck(self, *, resume: bool, force: bool) -> None:
        """The checks of `prepare` that write nothing: cheap enough to run before any import
        of torch or any loading, so a refused --out costs the user no wait."""
        root = self.root.expanduser().resolve()
        if root == Path(root.anchor) or root == Path.home().resolve():
            raise RunDirError(
                "refusing to use this folder as the run directory (its stage folders would be "
                "created, and with --force removed, there)",
                value=str(self.root),
                fix="pass --out a folder of its own, e.g. runs/NAME",
            )
        for name in (*self.folders, *MADE, *RUN_FILES):
            if (self.root / name).is_symlink():
                raise RunDirError(
                    "the run directory holds a symlink where edgekd writes its own files "
                    "(a run would write through it, outside the run directory)",
                    value=str(self.root / name),
                    fix="remove the link, or pass another --out",
                )
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise RunDirError("--out is a file, not a folder", value=str(self.root),
                              fix="pass a folder for the run, e.g. runs/NAME")  # fmt: skip
        has_run = (self.root / MANIFEST_NAME).exists()
        foreign = [] if has_run else self._foreign_entries()
        if foreign:  # refused before the lock file is made: nothing added to the folder
            raise RunDirError(
                "the run directory holds files that are not an edgekd run "
                f"(e.g. {foreign[0]!r}); edgekd writes only into a new, empty or "
                "edgekd-made folder",
                value=str(self.root),
                fix="pass --out a new folder, e.g. runs/NAME",
            )
        self._refuse_a_run(has_run, resume, force)

    def _refuse_a_run(self, has_run: bool, resume: bool, force: bool) -> None:
        if has_run and not (resume or force):
            raise RunDirError(
                "run directory already holds a run",
                value=str(self.root),
                fix="pass --resume to continue it, --force to start over, or another --out",
            )

    def _lock(self) -> None:
        """Hold an exclusive lock on RUN/.edgekd.lock until `release()` or the process ends
        (re-entrant within one process, so a library caller can run twice in a row)."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before
            return
        key = str(self.root.resolve())
        if key in _HELD_LOCKS:
            return
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunDirError(
                "another edgekd run is using this run directory",
                value=str(self.root),
                fix="wait for it to finish, or pass another --out",
            ) from None
        _HELD_LOCKS[key] = fd  # released by release(), or when the process exits

    def release(self) -> None:
        """Give up the run directory's lock (the end of a run)."""
        fd = _HELD_LOCKS.pop(str(self.root.resolve()), None)
        if fd is not None:
            os.close(fd)

    def _foreign_entries(self) -> list[str]:
        """Entries that edgekd did not make: anything but its empty stage folders, its log
        and its lock (what a run that died before its manifest leaves)."""
        mine = {*self.folders, *MADE}
        foreign = []
        for p in sorted(self.root.iterdir()):
            if p.name in (LOCK_NAME, "edgekd.log") and p.is_file():
                continue
            if p.name in mine and p.is_dir() and not any(p.rglob("*")):
                continue
            foreign.append(p.name)
        return foreign

    def _force_clean(self, inputs: tuple[Path, ...]) -> None:
        """Delete what the earlier run wrote: the files its manifest lists and RUN_FILES,
        then the stage folders left empty. Nothing else, and nothing if an input is among
        them."""
        from edgekd.pipeline.manifest import Manifest

        try:
            listed = Manifest.load(self.root).listed()
        except RunDirError:
            listed = []  # an unreadable manifest lists nothing: only RUN_FILES go
        root = self.root.resolve()
        doomed = []
        for rel in (*listed, *RUN_FILES):
            parts = Path(rel).parts
            if Path(rel).is_absolute() or ".." in parts or not parts:
                continue  # a manifest cannot send --force outside the run directory
            p = self.root / rel
            parent = p.parent.resolve()
            if (p.is_file() or p.is_symlink()) and (parent == root or root in parent.parents):
                doomed.append(p)
        for f in inputs:
            fp = Path(f).expanduser().resolve()
            for p in doomed:
                if fp == p.resolve() or fp in p.resolve().parents:
                    raise RunDirError(
                        "--force would delete an input of this run",
                        value=str(f),
                        fix=f"move it out of {self.root}, or pass another --out",
                    )
        for p in doomed:
            p.unlink()
        for name in self.folders:
            top = self.root / name
            if top.is_dir() and not top.is_symlink():
                for d in sorted((q for q in top.rglob("*") if q.is_dir()), reverse=True):
                    if not any(d.iterdir()):
                        d.rmdir()
                if not any(top.iterdir()):
                    top.rmdir()
