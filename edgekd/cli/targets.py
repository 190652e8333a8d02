"""`edgekd targets list|show`: the device profiles edgekd knows."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
import yaml

from edgekd.cli._common import Debug, guarded

targets_app = typer.Typer(help="List and show target device profiles.", no_args_is_help=True)


@targets_app.command("list")
def list_command(debug: Debug = False) -> None:
    """Table of every built-in profile: runtime, precisions, peaks, bandwidth, budgets."""

    def body() -> None:
        from rich.console import Console
        from rich.table import Table

        from edgekd.targets import builtin_profiles

        table = Table(
            "name",
            "aliases",
            "runtime",
            "precisions",
            "peak TOPS (fp32/fp16/int8)",
            "GB/s",
            "DLA",
            "latency budget",
            "latency",
        )
        for p in builtin_profiles().values():
            peaks = "/".join(
                f"{p.peak_tops[k]:g}" if k in p.peak_tops else "-" for k in ("fp32", "fp16", "int8")
            )
            table.add_row(
                p.name,
                ", ".join(p.aliases),
                f"{p.runtime} {p.runtime_version}",
                ",".join(p.precisions),
                peaks,
                f"{p.memory_bandwidth_gbs or '-'}",
                str(p.dla_cores),
                f"{p.default_budgets.latency_ms or '-'} ms",
                "measured" if p.measured else "predicted",
            )
        Console(width=200).print(table)

    guarded(body, debug=debug)


@targets_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Profile name, alias, or path to a YAML.")],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False,
    debug: Debug = False,
) -> None:
    """One profile in full, every figure with its source."""

    def body() -> None:
        from edgekd.targets import get_target

        data = get_target(name).model_dump(mode="json")
        if as_json:
            sys.stdout.write(json.dumps(data, indent=2) + "\n")
        else:
            sys.stdout.write(yaml.safe_dump(data, sort_keys=False))

    guarded(body, debug=debug)
