"""Shared by the trainer tests: one seeded teacher/student pair, and a crash after epoch 1."""

from __future__ import annotations

import torch

from edgekd.distill import distill
from edgekd.models import create_timm


def train_pair(tmp_path, data, cfg, **kw):
    """(student, TrainResult): mobilenetv3_small_050 (seed 0) taught by resnet10t (seed 1)."""
    torch.manual_seed(0)
    student = create_timm("mobilenetv3_small_050", 10)
    torch.manual_seed(1)
    return student, distill(student, create_timm("resnet10t", 10), data, cfg, tmp_path, key="k",
                            **kw)  # fmt: skip


def crash_after_first_epoch(record: dict) -> None:
    """An on_epoch callback that stops the run as a kill would, after epoch 1's checkpoint."""
    if record["epoch"] == 1:
        raise KeyboardInterrupt
