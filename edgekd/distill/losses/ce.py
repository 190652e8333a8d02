"""Plain cross-entropy on the labels, no teacher term: the baseline every KD loss must beat."""

from __future__ import annotations

import torch

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch


@register_loss("ce")
class CELoss(DistillLoss):
    """Cross-entropy on labels only (no distillation; the baseline)."""

    zero_at_match = False

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if batch.target is None:
            raise ValueError("the ce loss needs labels; label-free data needs a KD loss")
        return {}
