"""Students: any timm model sized to the teacher's classes.

`--student auto` and `--student search` choose the name with the student search
(`edgekd.search`, wired in `edgekd.pipeline.compress._search_stage`).
"""

from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import EdgekdError, InputError
from edgekd.models.loading import create_timm


def count_params(module: nn.Module) -> int:
    """Parameters of a torch module; an ONNX teacher's: the elements of its initializers."""
    from edgekd.models.onnx_teacher import OnnxTeacher

    if isinstance(module, OnnxTeacher):
        return module.params
    return sum(p.numel() for p in module.parameters())


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


def load_student(
    name: str, num_classes: int, input_shape: tuple[int, int, int], ckpt
) -> nn.Module:
    """Student `name` with the float weights of an edgekd training checkpoint, in eval mode."""
    student = build_student(name, num_classes, input_shape)
    student.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["model"])
    return student.eval()
