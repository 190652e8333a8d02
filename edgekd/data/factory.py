"""Python factories: `--data pkg.module:function` returning the user's own datasets.

The function is called with no arguments and returns either `(train, val)` or a dict with
`train`, `val` and optionally `calib`, `num_classes`, `class_names` and `augmented` (False
when the train dataset's transform is deterministic, so the teacher's outputs can be cached;
the default assumes random augmentation). Each dataset yields `(image tensor [C,H,W], int
label)`. Naming a factory is an explicit choice to run that code.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import torch

from edgekd.data.bundle import DataBundle
from edgekd.errors import DataError


def _labels(ds) -> list[int]:
    targets = getattr(ds, "targets", None)
    if targets is not None:
        return [int(t) for t in targets]
    return [int(ds[i][1]) for i in range(len(ds))]


def factory_bundle(spec: str, input_shape: tuple[int, int, int] | None = None) -> DataBundle:
    """A DataBundle from the factory named by `spec` ("pkg.module:function")."""
    module_name, _, fn_name = spec.partition(":")
    if not module_name or not fn_name:
        raise DataError("bad data factory", value=spec, fix="use the form pkg.module:function")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # let users name modules in the working directory
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise DataError(
            "cannot import data factory module", value=module_name, fix=str(e)
        ) from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise DataError(
            "data factory function not found",
            value=spec,
            fix=f"define {fn_name}() in {module_name}",
        )
    result = fn()
    extra: dict = {}
    if isinstance(result, dict):
        extra = result
        train, val = result.get("train"), result.get("val")
    elif isinstance(result, (tuple, list)) and len(result) == 2:
        train, val = result
    else:
        raise DataError(
            "data factory must return (train, val) or a dict with train and val",
            value=type(result).__name__,
        )
    for split, ds in (("train", train), ("val", val)):
        if ds is None or not hasattr(ds, "__len__") or len(ds) == 0:
            raise DataError(f"data factory returned an empty {split} dataset", value=spec)
    y_train, y_val = _labels(train), _labels(val)
    num_classes = int(extra.get("num_classes") or max(y_train + y_val) + 1)
    bad = [y for y in y_train + y_val if not 0 <= y < num_classes]
    if bad:
        raise DataError(
            "labels out of range",
            value=bad[0],
            fix=f"labels must lie in [0, {num_classes - 1}] for {num_classes} classes",
        )
    if num_classes < 2:
        raise DataError("data has only one class", value=spec, fix="a classifier needs 2 or more")
    x0 = train[0][0]
    if not isinstance(x0, torch.Tensor) or x0.dim() != 3:
        raise DataError(
            "data factory samples must be image tensors [C,H,W]",
            value=getattr(x0, "shape", type(x0).__name__),
        )
    shape = tuple(int(d) for d in x0.shape)
    if input_shape is not None and tuple(input_shape) != shape:
        raise DataError(
            "--input-shape does not match the factory's images",
            value=f"{input_shape} vs {shape}",
            fix="drop --input-shape or resize in the factory",
        )
    names = tuple(extra.get("class_names") or (str(i) for i in range(num_classes)))
    fp = hashlib.sha256(f"{spec}:{len(train)}:{len(val)}:{y_train}:{y_val}".encode()).hexdigest()
    return DataBundle(
        name=spec,
        train=train,
        val=val,
        calib_source=extra.get("calib") or train,
        num_classes=num_classes,
        input_shape=shape,  # type: ignore[arg-type]
        class_names=names,
        fingerprint=f"factory-{fp[:16]}",
        augmented=bool(extra.get("augmented", True)),
    )
