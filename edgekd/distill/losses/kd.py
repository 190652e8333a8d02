"""Hinton et al., "Distilling the Knowledge in a Neural Network" (2015): soft-target KD.

`kd_loss = T^2 * KL(softmax(t/T) || softmax(s/T))`, averaged over the batch; the module adds
cross-entropy on the labels: total = (1 - alpha) * CE + alpha * KD.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch, kl_rows


def kd_loss(
    logits_student: torch.Tensor, logits_teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * KL(p_teacher^T || p_student^T), batch mean."""
    log_p_s = F.log_softmax(logits_student / temperature, dim=1)
    log_p_t = F.log_softmax(logits_teacher / temperature, dim=1)
    return kl_rows(log_p_t, log_p_s).mean() * temperature**2


@register_loss("kd")
class KDLoss(DistillLoss):
    """Hinton KD: T^2 * KL on softened logits, plus cross-entropy on labels."""

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9) -> None:
        if not 0 <= alpha <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        super().__init__(ce=1 - alpha)
        self.temperature = temperature
        self.alpha = alpha

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        kd = kd_loss(batch.logits_s, batch.logits_t, self.temperature)
        return {"loss_kd": self.alpha * kd}
