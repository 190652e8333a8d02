"""`edgekd losses`: the distillation loss registry, one line per method with its arguments."""

from __future__ import annotations

import typer

from edgekd.cli._common import Debug, guarded


def losses_command(debug: Debug = False) -> None:
    """List the distillation losses (--kd-loss) with their arguments and defaults (--kd-args)."""

    def body() -> None:
        from edgekd.distill.losses import list_losses
        from edgekd.distill.losses._registry import loss_class, loss_defaults

        for name, line in list_losses().items():
            cls = loss_class(name)
            needs = f" [needs {', '.join(sorted(cls.needs))}]" if cls.needs else ""
            typer.echo(f"{name:8s} {line}{needs}")
            args = ", ".join(f"{k}={v}" for k, v in loss_defaults(name).items())
            typer.echo(f"{'':8s} args: {args or '(none)'}")

    guarded(body, debug=debug)
