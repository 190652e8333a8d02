"""`edgekd verify RUN_DIR`: every recorded file still has the sha256 the manifest holds."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli._common import Debug, fail, guarded


def verify_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (the --out of compress).")],
    debug: Debug = False,
) -> None:
    """Re-hash every artifact of a run against manifest.json and report.json; exit 1 on any
    missing or changed file."""

    def body() -> None:
        from edgekd.pipeline.verify import verify_run

        checked, bad = verify_run(run_dir)
        for m in bad:
            sys.stdout.write(f"{m.problem:8s} {m.path} (stage {m.stage})\n")
        if bad:
            names = ", ".join(f"{m.path} ({m.problem})" for m in bad[:5])
            raise fail(
                f"{len(bad)} of {checked} recorded files do not match their sha256: "
                f"{names}; rerun the affected stages with compress --resume"
            )
        sys.stdout.write(f"ok: {checked} files match manifest.json\n")

    guarded(body, debug=debug)
