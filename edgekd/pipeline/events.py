"""How the pipeline tells the outside what it is doing; the CLI renders it with rich."""

from __future__ import annotations


class Reporter:
    """No-op reporter: subclass and override what you want to show."""

    def stage_start(self, name: str, description: str) -> None: ...

    def stage_end(self, name: str, summary: str, *, skipped: bool = False) -> None: ...

    def epochs_start(self, phase: str, epochs: int, steps_per_epoch: int) -> None: ...

    def step(self, phase: str, epoch: int, step: int, steps_per_epoch: int) -> None: ...

    def epoch_end(self, phase: str, record: dict) -> None: ...

    def message(self, text: str) -> None: ...

    def val_metric(self, label: str) -> None:
        """What the per-epoch val figure is ("val top-1", "val agreement with the teacher")."""

    def log_only(self, text: str) -> None:
        """A line for edgekd.log that the console does not show (a stage's failure: the CLI
        prints its own one-line error)."""


class LogFileReporter(Reporter):
    """Forwards every event to `inner` and appends it, timestamped, to a log file."""

    def __init__(self, inner: Reporter, path) -> None:
        import time
        from pathlib import Path

        self.inner = inner
        self.path = Path(path)
        self._time = time

    def _log(self, text: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(f"{self._time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def stage_start(self, name: str, description: str) -> None:
        self._log(f"stage {name}: start ({description})")
        self.inner.stage_start(name, description)

    def stage_end(self, name: str, summary: str, *, skipped: bool = False) -> None:
        self._log(f"stage {name}: {'reused' if skipped else 'done'}: {summary}")
        self.inner.stage_end(name, summary, skipped=skipped)

    def epochs_start(self, phase: str, epochs: int, steps_per_epoch: int) -> None:
        self._log(f"{phase}: {epochs} epochs of {steps_per_epoch} steps")
        self.inner.epochs_start(phase, epochs, steps_per_epoch)

    def step(self, phase: str, epoch: int, step: int, steps_per_epoch: int) -> None:
        self.inner.step(phase, epoch, step, steps_per_epoch)

    def epoch_end(self, phase: str, record: dict) -> None:
        self._log(
            f"{phase} epoch {record['epoch']}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float))
        )
        self.inner.epoch_end(phase, record)

    def message(self, text: str) -> None:
        self._log(text)
        self.inner.message(text)

    def log_only(self, text: str) -> None:
        self._log(text)

    def val_metric(self, label: str) -> None:
        self._log(f"per-epoch val figure: {label}")
        self.inner.val_metric(label)
