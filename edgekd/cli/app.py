"""The `edgekd` command line: a thin typer layer over the library (one file per command)."""

from __future__ import annotations

import sys

import typer

from edgekd import __version__
from edgekd.cli.compress import HELP as COMPRESS_HELP
from edgekd.cli.compress import compress_command
from edgekd.cli.doctor import doctor_command
from edgekd.cli.lint import lint_command
from edgekd.cli.losses import losses_command
from edgekd.cli.profile import profile_command
from edgekd.cli.quant_report import quant_report_command
from edgekd.cli.report import report_command
from edgekd.cli.search import search_command
from edgekd.cli.targets import targets_app
from edgekd.cli.verify import verify_command

try:  # typer >= 0.20 vendors click as typer._click
    from typer._click import exceptions as click_exceptions
except ImportError:  # older typer uses click itself
    from click import exceptions as click_exceptions

app = typer.Typer(
    name="edgekd",
    help="Compress a trained PyTorch classifier for an edge device and prove it meets the budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: long option names never truncated at 80 columns
)
app.command("compress", help=COMPRESS_HELP)(compress_command)
app.command("profile")(profile_command)
app.command("verify")(verify_command)
app.command("report")(report_command)
app.command("lint")(lint_command)
app.command("doctor")(doctor_command)
app.command("losses")(losses_command)
app.command("quant-report")(quant_report_command)
app.command("search")(search_command)
app.add_typer(targets_app, name="targets")


@app.command("version")
def version_command() -> None:
    """Print the edgekd version."""
    typer.echo(__version__)


def main(argv: list[str] | None = None) -> None:
    """Console entry point. Usage errors exit 1 (2 is reserved for a missed budget)."""
    try:
        rv = app(args=argv, prog_name="edgekd", standalone_mode=False)
    except click_exceptions.UsageError as e:
        cmd = e.ctx.command_path if e.ctx else "edgekd"
        sys.stderr.write(f"error: {' '.join(e.format_message().split())} (see '{cmd} --help')\n")
        sys.exit(1)
    except click_exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click_exceptions.Abort:
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
