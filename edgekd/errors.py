"""The error hierarchy: every failure a user can cause is an `EdgekdError` with one clear line."""

from __future__ import annotations

from collections.abc import Iterable


class EdgekdError(Exception):
    """A failure the user can act on.

    The message is a single line: what failed, the bad value, the valid options and the fix.

    Args:
        what: What failed, e.g. "teacher file not found".
        value: The offending value, quoted in the message.
        valid: The valid options, listed (truncated) in the message.
        fix: How to fix it, e.g. "pass --arch NAME".
    """

    exit_code = 1

    def __init__(
        self,
        what: str,
        *,
        value: object = None,
        valid: Iterable[str] | None = None,
        fix: str | None = None,
    ) -> None:
        self.what = what
        self.value = value
        self.valid = list(valid) if valid is not None else None
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [self.what]
        if self.value is not None:
            parts[0] += f": {self.value!s}" if isinstance(self.value, str) else f": {self.value!r}"
        if self.valid is not None:
            shown = ", ".join(self.valid[:12]) + (", ..." if len(self.valid) > 12 else "")
            parts.append(f"valid: {shown}")
        if self.fix:
            parts.append(self.fix)
        return " ".join("; ".join(parts).split())  # one line, whatever the pieces held


class InputError(EdgekdError):
    """Bad input: a file, a flag or a value the user gave."""


class ModelLoadError(InputError):
    """The teacher (or a checkpoint) cannot be loaded safely."""


class DataError(InputError):
    """The data source is missing, malformed or inconsistent with the model."""


class TargetError(InputError):
    """Unknown or malformed target profile."""


class ConfigError(InputError):
    """An option or recipe value is invalid."""


class RunDirError(InputError):
    """The run directory cannot be used (unwritable, or holds another run)."""


class StageError(EdgekdError):
    """A pipeline stage failed for a reason that is not the user's input."""


class RemoteError(EdgekdError):
    """The device could not be reached or a command on it failed (SSH, trtexec, agent)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what CI runners and `timeout` send), raised by the CLI's handler: a
    KeyboardInterrupt, so every stage cleans up and records itself as on Ctrl-C."""
