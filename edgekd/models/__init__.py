"""Teachers and students: safe loading of a trained model, timm students, shape checks."""

from __future__ import annotations

import torch

from edgekd.errors import InputError
from edgekd.models.loading import LoadedModel, create_timm, load_teacher, save_checkpoint
from edgekd.models.students import build_student, count_params, load_student
from edgekd.outputs import first_output

__all__ = [
    "LoadedModel",
    "build_student",
    "check_teacher",
    "count_params",
    "create_timm",
    "load_student",
    "load_teacher",
    "save_checkpoint",
    "teacher_classes",
]


def teacher_classes(teacher: LoadedModel, input_shape: tuple[int, int, int]) -> int:
    """Run the teacher on a dummy batch; it must return logits [N, K]: returns K."""
    try:
        with torch.no_grad():
            out = teacher.module(torch.zeros(2, *input_shape))
    except Exception as e:
        raise InputError(
            f"teacher cannot run on input shape {','.join(map(str, input_shape))}",
            value=str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__,
            fix="pass --input-shape C,H,W matching what the teacher was trained on",
        ) from None
    out = first_output(out)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise InputError(
            "teacher must return logits of shape [N, classes]",
            value=tuple(getattr(out, "shape", ())),
        )
    return int(out.shape[1])


def check_teacher(
    teacher: LoadedModel, input_shape: tuple[int, int, int], num_classes: int
) -> None:
    """The teacher runs on `input_shape` and returns logits [N, num_classes]."""
    k = teacher_classes(teacher, input_shape)
    if k != num_classes:
        raise InputError(
            "teacher's output classes do not match the data",
            value=f"teacher {k} vs data {num_classes}",
            fix="use the data the teacher was trained on (same class folders)",
        )
