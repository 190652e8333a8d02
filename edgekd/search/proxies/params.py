"""The plain baseline: the number of trainable parameters (bigger scores higher). A proxy
must beat this to matter."""

from __future__ import annotations

from torch import nn


def params_score(model: nn.Module) -> float:
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))
