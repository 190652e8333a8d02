"""Data sources: the built-in `digits` and `fashion-mnist[:PATH]`, image folders, and python
factories `pkg.module:fn`; `max_train` limits any of them to a stratified, seeded subset."""

from __future__ import annotations

import re
from pathlib import Path

from edgekd.data.bundle import DataBundle, limit_train, loader, stack_inputs
from edgekd.errors import DataError

__all__ = ["DataBundle", "load_data", "loader", "stack_inputs"]

_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def load_data(
    spec: str,
    input_shape: tuple[int, int, int] | None = None,
    augment: bool = True,
    max_train: int | None = None,
    normalize: str | None = None,
) -> DataBundle:
    """Resolve `--data`: "digits", "fashion-mnist[:PATH]", a folder (train/ and val/ class
    folders, or unlabeled images), or "pkg.module:function". `augment=False` keeps the
    training transform deterministic (then the teacher's outputs can be cached). `max_train`
    keeps that many training images, stratified by class (seed 0); val and test stay whole.
    `normalize`: an image folder's mean/std (`folder.parse_normalize`); the built-in data sets
    have their own."""
    if max_train is not None and max_train < 1:
        raise DataError("--max-train must be a positive number of images", value=max_train,
                        fix="pass a count such as 5000, or leave it out for all")  # fmt: skip
    return limit_train(_load(spec, input_shape, augment, normalize), max_train)


def _load(spec: str, input_shape, augment: bool, normalize: str | None = None) -> DataBundle:
    from edgekd.data.fashion import parse_spec

    folder = spec not in ("digits",) and parse_spec(spec) is None and Path(spec).is_dir()
    if normalize is not None and not folder:
        raise DataError(
            "--normalize applies to image folders", value=f"--data {spec}",
            fix="leave it out: digits, fashion-mnist and factories normalise their own images",
        )  # fmt: skip
    if spec == "digits":
        from edgekd.data.digits import digits_bundle

        return digits_bundle(input_shape, augment=augment)
    if (fashion := parse_spec(spec)) is not None:
        from edgekd.data.fashion import fashion_bundle

        return fashion_bundle(fashion, input_shape, augment=augment)
    if Path(spec).exists():
        from edgekd.data.folder import folder_bundle

        return folder_bundle(spec, input_shape, augment=augment, normalize=normalize)
    if _FACTORY.match(spec):
        from edgekd.data.factory import factory_bundle

        return factory_bundle(spec, input_shape)
    raise DataError(
        "data source not found",
        value=spec,
        fix="pass digits, fashion-mnist[:PATH], a folder with train/ and val/, "
        "or pkg.module:function",
    )
