"""Transformed Teacher Matching, Zheng & Yang, "Knowledge Distillation Based on Transformed
Teacher Matching" (ICLR 2024).

TTM: KL(softmax(gamma * t) || softmax(s)), the student at temperature 1 and no T^2 factor
(softmax(t)^gamma renormalised equals softmax(gamma * t)). WTTM weights each sample's KL by
sum_j softmax(t)_j^gamma, which is larger for uncertain teacher outputs. Batch mean; the module
adds `beta` times it to `ce` times cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch, kl_rows


def ttm_loss(
    logits_student: torch.Tensor,
    logits_teacher: torch.Tensor,
    gamma: float,
    weighted: bool = False,
) -> torch.Tensor:
    """Batch mean of KL(softmax(gamma*t) || softmax(s)), weighted per sample for WTTM."""
    kl = kl_rows(F.log_softmax(gamma * logits_teacher, dim=1), F.log_softmax(logits_student, 1))
    if weighted:
        kl = kl * F.softmax(logits_teacher, dim=1).pow(gamma).sum(dim=1)
    return kl.mean()


@register_loss("ttm")
class TTMLoss(DistillLoss):
    """Transformed Teacher Matching (Zheng & Yang 2024): KL(softmax(gamma*t) || softmax(s))."""

    zero_at_match = False  # the teacher is transformed, the student is not
    weighted = False

    def __init__(self, ce: float = 1.0, beta: float = 1.0, gamma: float = 0.25) -> None:
        super().__init__(ce)
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.beta, self.gamma = beta, gamma

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        loss = ttm_loss(batch.logits_s, batch.logits_t, self.gamma, self.weighted)
        return {"loss_wttm" if self.weighted else "loss_ttm": self.beta * loss}


@register_loss("wttm")
class WTTMLoss(TTMLoss):
    """Weighted TTM (Zheng & Yang 2024): TTM per sample weighted by sum_j p_t,j^gamma."""

    weighted = True
