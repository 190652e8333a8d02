"""Distillation: KD losses (registry) and the training loop with per-epoch checkpoints."""

from edgekd.distill.trainer import TrainConfig, TrainResult, distill
from edgekd.models.evaluate import FrozenTeacher, evaluate_torch

__all__ = ["FrozenTeacher", "TrainConfig", "TrainResult", "distill", "evaluate_torch"]
