"""`edgekd report RUN_DIR`: re-render report.md, report.html and junit.xml from report.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli._common import Debug, guarded


def report_command(
    run_dir: Annotated[Path | None, typer.Argument(help="Run directory of a compress run.")] = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the JSON schema of report.json and exit.")
    ] = False,
    debug: Debug = False,
) -> None:
    """Regenerate a run's reports from its report.json, or print the report's JSON schema."""

    def body() -> None:
        from edgekd.errors import InputError
        from edgekd.report import REPORT_SCHEMA_VERSION, Report
        from edgekd.report.writer import regenerate

        if schema:
            s = Report.model_json_schema()
            s["$comment"] = f"edgekd report.json schema version {REPORT_SCHEMA_VERSION}"
            sys.stdout.write(json.dumps(s, indent=2) + "\n")
            return
        if run_dir is None:
            raise InputError("no run directory given", fix="pass RUN_DIR or --schema")
        r = regenerate(run_dir)
        sys.stdout.write(
            f"{'PASS' if r['verdict']['passed'] else 'BUDGET MISSED'}: wrote "
            f"{run_dir / 'report.md'}, {run_dir / 'report.html'}, {run_dir / 'junit.xml'}\n"
        )

    guarded(body, debug=debug)
