"""Registry of distillation losses: `@register_loss("name")` on a `DistillLoss` subclass.

`create_loss(name, **args)` checks the arguments against the constructor's signature, so a typo
in `--kd-args` is one clear line, not a TypeError deep in training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from edgekd.errors import ConfigError

_LOSSES: dict[str, type] = {}
_WHERE: dict[str, str] = {}


def register_loss(name: str) -> Callable[[type], type]:
    """Register a loss module under `name`; a second registration under the same name fails."""

    def deco(cls: type) -> type:
        where = f"{cls.__module__}.{cls.__qualname__}"
        if name in _LOSSES and _WHERE[name] != where:
            raise ValueError(f"loss {name!r} registered twice: {_WHERE[name]} and {where}")
        _LOSSES[name] = cls
        _WHERE[name] = where
        cls.registered_name = name
        return cls

    return deco


def list_losses() -> dict[str, str]:
    """Registered names and the first line of each loss's docstring."""
    return {n: (inspect.getdoc(c) or "").splitlines()[0] for n, c in sorted(_LOSSES.items())}


def loss_class(name: str) -> type:
    if name not in _LOSSES:
        raise ConfigError(
            "unknown KD loss",
            value=repr(name),
            valid=sorted(_LOSSES),
            fix="see `edgekd losses` for what each one does",
        )
    return _LOSSES[name]


def loss_defaults(name: str) -> dict[str, Any]:
    """The constructor arguments of loss `name` with their defaults."""
    sig = inspect.signature(loss_class(name).__init__)
    return {p.name: p.default for p in list(sig.parameters.values())[1:]}


def _coerce(name: str, key: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        kind = type(default).__name__
        raise ConfigError(
            f"bad value for {key} of KD loss {name!r}", value=repr(text), fix=f"give a {kind}"
        ) from None
    return text


def parse_loss_args(name: str, text: str | dict | None) -> dict[str, Any]:
    """`"key=value,key=value"` (or a dict, from a recipe) -> typed constructor arguments."""
    defaults = loss_defaults(name)
    if not text:
        return {}
    if isinstance(text, dict):
        items = [(str(k), v) for k, v in text.items()]
    else:
        items = []
        for part in text.split(","):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise ConfigError(
                    "bad --kd-args entry", value=repr(part), fix="use key=value,key=value"
                )
            items.append((key.strip(), value.strip()))
    out: dict[str, Any] = {}
    for key, value in items:
        if key not in defaults:
            raise ConfigError(f"KD loss {name!r} has no argument {key!r}", valid=sorted(defaults))
        out[key] = _coerce(name, key, value, defaults[key]) if isinstance(value, str) else value
    return out


def create_loss(name: str, **kwargs):
    cls = loss_class(name)
    parse_loss_args(name, kwargs)  # unknown names -> one line listing the valid ones
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad arguments for KD loss {name!r}", value=str(e)) from None


def resolve_loss_args(
    name: str,
    kd_args: str | dict | None,
    *,
    temperature: float | None = None,
    alpha: float | None = None,
    labeled: bool = True,
) -> dict[str, Any]:
    """The KD loss's arguments from --kd-args plus the --temperature / --alpha shorthands,
    checked by building the loss once (bad names and values are one ConfigError line)."""
    args = parse_loss_args(name, kd_args)
    accepted = loss_defaults(name)
    for flag, field, value in (("--temperature", "temperature", temperature),
                               ("--alpha", "alpha", alpha)):  # fmt: skip
        if value is None or field in args:
            continue
        if field not in accepted:
            raise ConfigError(
                f"{flag} does not apply to KD loss {name!r}",
                value=value,
                fix=f"its arguments are {', '.join(accepted)} (set them with --kd-args)",
            )
        args[field] = value
    create_loss(name, **args)
    if name == "ce" and not labeled:
        raise ConfigError(
            "the ce loss needs labels and this data has none", fix="pick a KD loss, e.g. kd"
        )
    return args
