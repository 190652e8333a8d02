"""The pipeline's events rendered with rich: a line per stage, a bar per training phase."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from edgekd.pipeline.events import Reporter


class RichReporter(Reporter):
    def __init__(self, *, quiet: bool = False, interactive: bool = True) -> None:
        self.console = Console(stderr=True)
        self.quiet = quiet
        self.interactive = interactive and self.console.is_terminal
        self._progress: Progress | None = None
        self._task = None
        self._t0: dict[str, float] = {}
        self._val = "val top-1"  # what record["val_acc"] is (val_metric() says otherwise)

    def _print(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False, soft_wrap=True)

    def stage_start(self, name: str, description: str) -> None:
        self._t0[name] = time.perf_counter()
        self._print(f"[bold cyan]▶ {name}[/] {description}")
        if self.quiet or not self.interactive:
            return
        # a live line per stage; training phases replace it with an epoch bar
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("  {task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(name, total=None)

    def stage_end(self, name: str, summary: str, *, skipped: bool = False) -> None:
        self._close_bar()
        if skipped:
            self._print(f"[dim]↷ {name}: {summary}[/]")
            return
        dt = time.perf_counter() - self._t0.get(name, time.perf_counter())
        self._print(f"[green]✓ {name}[/] {summary} [dim]({dt:.1f}s)[/]")

    def epochs_start(self, phase: str, epochs: int, steps_per_epoch: int) -> None:
        self._close_bar()
        if self.quiet or not self.interactive:
            return
        self._progress = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            f"{phase} epoch 1/{epochs}", total=epochs * steps_per_epoch, status=""
        )
        self._epochs = epochs

    def step(self, phase: str, epoch: int, step: int, steps_per_epoch: int) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task,
                completed=epoch * steps_per_epoch + step,
                description=f"{phase} epoch {epoch + 1}/{self._epochs}",
            )

    def epoch_end(self, phase: str, record: dict) -> None:
        losses = " ".join(
            f"{k.removeprefix('loss_')} {v:.3f}" for k, v in record.items() if k.startswith("loss_")
        )
        line = (
            f"  {phase} epoch {record['epoch']}: {losses}  {self._val} {record['val_acc']:.2f}%  "
            f"({record['seconds']:.1f}s)"
        )
        if self._progress is not None:
            self._progress.update(self._task, status=f"{self._val} {record['val_acc']:.2f}%")
            self._progress.console.print(line, highlight=False)
        else:
            self._print(line)

    def val_metric(self, label: str) -> None:
        self._val = label

    def heartbeat(self, text: str) -> None:
        # a live bar or spinner already shows the time; a CI log gets the line
        if not self.quiet and not self.interactive:
            self.console.print(f"[dim]  {text}[/]", highlight=False, soft_wrap=True)

    def message(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)
        if not self.quiet:
            (self._progress.console if self._progress else self.console).print(
                f"[dim]  {text}[/]", highlight=False, soft_wrap=True
            )

    def _close_bar(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
