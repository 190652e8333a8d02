"""Data sources: the built-in `digits`, image folders, and python factories `pkg.module:fn`."""

from __future__ import annotations

import re
from pathlib import Path

from edgekd.data.bundle import DataBundle, loader, stack_inputs
from edgekd.errors import DataError

__all__ = ["DataBundle", "load_data", "loader", "stack_inputs"]

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def load_data(
    spec: str, input_shape: tuple[int, int, int] | None = None, augment: bool = True
) -> DataBundle:
    """Resolve `--data`: "digits", a folder (train/ and val/ class folders, or unlabeled
    images), or "pkg.module:function". `augment=False` keeps the training transform
    deterministic (then the teacher's outputs can be cached)."""
    if spec == "digits":
        from edgekd.data.digits import digits_bundle

        return digits_bundle(input_shape, augment=augment)
    if Path(spec).exists():
        from edgekd.data.folder import folder_bundle

        return folder_bundle(spec, input_shape, augment=augment)
    if _FACTORY.match(spec):
        from edgekd.data.factory import factory_bundle

        return factory_bundle(spec, input_shape)
    raise DataError(
        "data source not found",
        value=spec,
        fix="pass digits, a folder with train/ and val/, or pkg.module:function",
    )
