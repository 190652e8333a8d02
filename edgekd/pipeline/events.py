"""How the pipeline tells the outside what it is doing; the CLI renders it with rich.

Every step that can take more than a few seconds reports counted progress
(`edgekd.progress.Tally`: "what i/n, ETA"); `LogFileReporter.watch` adds a heartbeat for
whatever does not: after `HEARTBEAT_S` without a line it repeats the current activity with
how long it has run, so neither edgekd.log nor a CI console is silent for longer."""

from __future__ import annotations

import threading
import time

from edgekd.progress import duration

HEARTBEAT_S = 6.0  # the most seconds edgekd.log goes without a line during a run


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

    def heartbeat(self, text: str) -> None:
        """Nothing was said for a while: `text` repeats what is running and for how long."""

    def watch(self, interval: float = HEARTBEAT_S):
        """A context manager around a run; `LogFileReporter`'s sends heartbeats."""
        import contextlib

        return contextlib.nullcontext(self)


class LogFileReporter(Reporter):
    """Forwards every event to `inner` and appends it, timestamped, to a log file."""

    def __init__(self, inner: Reporter, path) -> None:
        from pathlib import Path

        self.inner = inner
        self.path = Path(path)
        self._lock = threading.Lock()
        self._said = time.monotonic()  # when the last line was written
        self._activity, self._since = "starting", time.monotonic()
        self._live = False  # the activity is a live counter (a training step), not a start
        self._phase: tuple[str, int, float] = ("", 1, 0.0)  # name, epochs, start

    def _log(self, text: str) -> None:
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
            self._said = time.monotonic()

    def _doing(self, text: str) -> None:
        self._activity, self._since, self._live = text, time.monotonic(), False

    def watch(self, interval: float = HEARTBEAT_S):
        """A context manager: while inside, a heartbeat line follows every `interval`
        seconds without one (see the module docstring)."""
        import contextlib

        @contextlib.contextmanager
        def watching():
            stop = threading.Event()
            thread = threading.Thread(target=self._beat, args=(stop, interval), daemon=True,
                                      name="edgekd-heartbeat")  # fmt: skip
            thread.start()
            try:
                yield self
            finally:
                stop.set()
                thread.join()

        return watching()

    def _beat(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(min(0.5, interval / 4)):
            if time.monotonic() - self._said < interval:
                continue
            if self._live:
                text = f"… {self._activity}"
            else:
                text = f"… still running, {duration(time.monotonic() - self._since)} since: "
                text += self._activity
            self._log(text)
            self.inner.heartbeat(text)

    def stage_start(self, name: str, description: str) -> None:
        self._doing(f"in stage {name}: {description}")
        self._log(f"stage {name}: start ({description})")
        self.inner.stage_start(name, description)

    def stage_end(self, name: str, summary: str, *, skipped: bool = False) -> None:
        self._log(f"stage {name}: {'reused' if skipped else 'done'}: {summary}")
        self.inner.stage_end(name, summary, skipped=skipped)

    def epochs_start(self, phase: str, epochs: int, steps_per_epoch: int) -> None:
        self._phase = (phase, epochs, time.monotonic())
        self._doing(f"{phase}: starting {epochs} epochs of {steps_per_epoch} steps")
        self._log(f"{phase}: {epochs} epochs of {steps_per_epoch} steps")
        self.inner.epochs_start(phase, epochs, steps_per_epoch)

    def step(self, phase: str, epoch: int, step: int, steps_per_epoch: int) -> None:
        name, epochs, t0 = self._phase
        if name == phase:  # what the heartbeat repeats: where training is, and its ETA
            # `step` counts the steps done in this epoch (1 after the first)
            done, total = epoch * steps_per_epoch + step, epochs * steps_per_epoch
            eta = duration((time.monotonic() - t0) / max(1, done) * (total - done))
            self._activity = (f"{phase} epoch {epoch + 1}/{epochs}, step {step}/"
                              f"{steps_per_epoch} (phase ETA {eta})")  # fmt: skip
            self._live = True
        self.inner.step(phase, epoch, step, steps_per_epoch)

    def epoch_end(self, phase: str, record: dict) -> None:
        self._log(
            f"{phase} epoch {record['epoch']}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float))
        )
        self.inner.epoch_end(phase, record)

    def message(self, text: str) -> None:
        self._doing(text)
        self._log(text)
        self.inner.message(text)

    def log_only(self, text: str) -> None:
        self._log(text)

    def heartbeat(self, text: str) -> None:
        self._log(text)
        self.inner.heartbeat(text)

    def val_metric(self, label: str) -> None:
        self._log(f"per-epoch val figure: {label}")
        self.inner.val_metric(label)
