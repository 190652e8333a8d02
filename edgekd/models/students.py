"""Students: any timm model sized to the teacher's classes, and the interim `auto` choice.

`auto` (until the architecture search lands) picks from a fixed list of edge-friendly timm
models by parameter count: the largest candidate with at most 1/16 of the teacher's parameters
(at the data's class count), or the smallest candidate when none is that small.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import EdgekdError, InputError
from edgekd.models.loading import create_timm

AUTO_CANDIDATES = (
    "mobilenetv3_small_050",
    "mobilenetv3_small_075",
    "mobilenetv3_small_100",
    "mobilenetv3_large_075",
    "mobilenetv3_large_100",
    "resnet10t",
    "resnet18",
    "resnet34",
)
AUTO_MAX_PARAM_FRACTION = 1 / 16


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def pick_auto_student(teacher_params: int, num_classes: int) -> tuple[str, dict[str, int]]:
    """The `auto` student name and the parameter count of every candidate considered."""
    sizes = {n: count_params(create_timm(n, num_classes)) for n in AUTO_CANDIDATES}
    limit = teacher_params * AUTO_MAX_PARAM_FRACTION
    fitting = [n for n in AUTO_CANDIDATES if sizes[n] <= limit]
    name = max(fitting, key=sizes.__getitem__) if fitting else min(sizes, key=sizes.__getitem__)
    return name, sizes


def build_student(name: str, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """A fresh timm student for `num_classes`, checked to run on `input_shape`."""
    in_chans = input_shape[0]
    model = create_timm(name, num_classes, in_chans=in_chans)
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    except Exception as e:
        raise InputError(
            f"student {name!r} cannot run on input shape {input_shape}",
            value=str(e).splitlines()[0][:160],
            fix="pick another --student or a larger --input-shape",
        ) from None
    if tuple(out.shape) != (2, num_classes):
        raise EdgekdError(f"student {name!r} returned shape {tuple(out.shape)}, not [N, C]")
    return model
