"""Counted progress for loops that take a while: "what i/n, ETA" lines through a callback.
Library code takes a `progress(done, total)` callable; `Tally` turns one into lines."""

from __future__ import annotations

import time
from collections.abc import Callable


def duration(seconds: float) -> str:
    """'42s', '3m05s', '1h02m'."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Tally:
    """Counted progress of one loop as lines through `say`: "{what} {done}/{total} {unit}
    (ETA 12s)". Call it with (done, total) after each item; `note` is appended to that item's
    line. A line at most every `every` seconds, the first once the loop has run that long, and
    the last ("in 14s") when an earlier one was said: a loop shorter than `every` says
    nothing (every=0: a line per item)."""

    def __init__(
        self,
        say: Callable[[str], None],
        what: str,
        unit: str = "",
        every: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.say, self.what, self.unit, self.every, self.clock = say, what, unit, every, clock
        self.t0 = self._last = clock()
        self._said = False

    def __call__(self, done: int, total: int, note: str = "") -> None:
        now = self.clock()
        spent = now - self.t0
        if done >= total:
            if not self._said and spent < self.every:
                return
            when = f"in {duration(spent)}"
        else:
            if now - self._last < self.every:
                return
            when = f"ETA {duration(spent / max(done, 1) * (total - done))}"
        self._last, self._said = now, True
        unit = f" {self.unit}" if self.unit else ""
        self.say(f"{self.what} {done}/{total}{unit}{': ' + note if note else ''} ({when})")
