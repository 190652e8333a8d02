"""Teachers and students: safe loading of a trained model, timm students, shape checks."""

from __future__ import annotations

import torch

from edgekd.errors import InputError
from edgekd.models.loading import LoadedModel, create_timm, load_teacher, save_checkpoint
from edgekd.models.students import build_student, count_params, pick_auto_student

__all__ = [
    "LoadedModel",
    "build_student",
    "check_teacher",
    "count_params",
    "create_timm",
    "load_teacher",
    "pick_auto_student",
    "save_checkpoint",
]


def check_teacher(
    teacher: LoadedModel, input_shape: tuple[int, int, int], num_classes: int
) -> None:
    """Run the teacher on a dummy batch: it must return logits [N, num_classes]."""
    try:
        with torch.no_grad():
            out = teacher.module(torch.zeros(2, *input_shape))
    except Exception as e:
        raise InputError(
            f"teacher cannot run on input shape {','.join(map(str, input_shape))}",
            value=str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__,
            fix="pass --input-shape C,H,W matching what the teacher was trained on",
        ) from None
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise InputError(
            "teacher must return logits of shape [N, classes]",
            value=tuple(getattr(out, "shape", ())),
        )
    if out.shape[1] != num_classes:
        raise InputError(
            "teacher's output classes do not match the data",
            value=f"teacher {out.shape[1]} vs data {num_classes}",
            fix="use the data the teacher was trained on (same class folders)",
        )
