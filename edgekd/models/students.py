"""Students: any timm model sized to the teacher's classes, and the `auto` choice.

`auto` picks from a fixed list of edge-friendly timm models by parameter count: the largest
candidate with at most 1/16 of the teacher's parameters (at the data's class count), or the
smallest candidate when none is that small. With a latency budget, candidates whose latency
on the target (measured on the host, predicted elsewhere) is over it are skipped, largest
first. The training-free search (`--student search`, `edgekd search`) is not the default:
on the digits benchmark DisWOT ranked students above parameter count for the resnet18
teacher but well below it for an efficientnet_b0 teacher
(benchmarks/results/search_proxies*.json).
"""

from __future__ import annotations

from collections.abc import Callable

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


def pick_auto_student(
    teacher_params: int, num_classes: int, fits: Callable[[str], bool] | None = None
) -> tuple[str, dict[str, int]]:
    """The `auto` student name and the parameter count of every candidate considered.

    `fits(name)`: whether the candidate meets the latency budget; tried largest first among
    those under the size limit. When none fits, the smallest under the limit is returned (the
    report then shows the budget missed)."""
    sizes = {n: count_params(create_timm(n, num_classes)) for n in AUTO_CANDIDATES}
    limit = teacher_params * AUTO_MAX_PARAM_FRACTION
    by_size = sorted(AUTO_CANDIDATES, key=sizes.__getitem__, reverse=True)
    under = [n for n in by_size if sizes[n] <= limit] or by_size[-1:]
    for name in under:
        if fits is None or fits(name):
            return name, sizes
    return under[-1], sizes


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
