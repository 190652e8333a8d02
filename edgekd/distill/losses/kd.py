"""Hinton et al., "Distilling the Knowledge in a Neural Network" (2015): soft-target KD.

`kd_loss = T^2 * KL(softmax(t/T) || softmax(s/T))`, averaged over the batch; the module adds
cross-entropy on the labels: total = (1 - alpha) * CE + alpha * KD.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.losses._registry import register_loss


def kd_loss(
    logits_student: torch.Tensor, logits_teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """T^2 * KL(p_teacher^T || p_student^T), batch mean."""
    log_p_s = F.log_softmax(logits_student / temperature, dim=1)
    log_p_t = F.log_softmax(logits_teacher / temperature, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1).mean()
    return kl * temperature**2


@register_loss("kd")
class KDLoss(nn.Module):
    """Hinton KD: T^2 * KL on softened logits, plus cross-entropy on labels."""

    def __init__(self, temperature: float = 4.0, alpha: float = 0.9) -> None:
        super().__init__()
        self.temperature = temperature
        self.alpha = alpha

    def forward(
        self,
        logits_student: torch.Tensor,
        logits_teacher: torch.Tensor,
        target: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        terms = {"loss_kd": self.alpha * kd_loss(logits_student, logits_teacher, self.temperature)}
        if target is not None and self.alpha < 1:
            terms["loss_ce"] = (1 - self.alpha) * F.cross_entropy(logits_student, target)
        return terms
