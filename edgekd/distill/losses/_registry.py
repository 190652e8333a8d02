"""Registry of distillation losses: `@register_loss("name")` on a class returning a named dict."""

from __future__ import annotations

import inspect
from collections.abc import Callable

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
        return cls

    return deco


def list_losses() -> dict[str, str]:
    """Registered names and the first line of each loss's docstring."""
    return {n: (inspect.getdoc(c) or "").splitlines()[0] for n, c in sorted(_LOSSES.items())}


def create_loss(name: str, **kwargs):
    if name not in _LOSSES:
        raise ConfigError("unknown KD loss", value=repr(name), valid=sorted(_LOSSES))
    try:
        return _LOSSES[name](**kwargs)
    except TypeError as e:
        raise ConfigError(f"bad arguments for KD loss {name!r}", value=str(e)) from None
