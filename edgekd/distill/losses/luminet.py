"""LumiNet, Hossain et al., "LumiNet: The Bright Side of Perceptual Knowledge Distillation"
(2023).

Each class's logit is standardised across the batch (mean and biased variance over the batch
dimension, eps 1e-5 under the square root), for student and teacher separately; the loss is
alpha^2 * KL(softmax(t_hat / T) || softmax(s_hat / T)), batch mean. Needs batches of 2 or more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch, kl_rows

EPS = 1e-5


def standardize_per_class(logits: torch.Tensor) -> torch.Tensor:
    """(z - mean_batch) / sqrt(var_batch + eps), per class (column); biased variance."""
    mean = logits.mean(dim=0, keepdim=True)
    var = logits.var(dim=0, unbiased=False, keepdim=True)
    return (logits - mean) / torch.sqrt(var + EPS)


def luminet_loss(
    logits_student: torch.Tensor, logits_teacher: torch.Tensor, alpha: float, temperature: float
) -> torch.Tensor:
    log_p_s = F.log_softmax(standardize_per_class(logits_student) / temperature, dim=1)
    log_p_t = F.log_softmax(standardize_per_class(logits_teacher) / temperature, dim=1)
    return alpha**2 * kl_rows(log_p_t, log_p_s).mean()


@register_loss("luminet")
class LumiNetLoss(DistillLoss):
    """LumiNet (Hossain et al. 2023): KD on logits standardised per class across the batch."""

    def __init__(self, ce: float = 1.0, alpha: float = 2.0, temperature: float = 2.0) -> None:
        super().__init__(ce)
        self.alpha, self.temperature = alpha, temperature

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if batch.logits_s.shape[0] < 2:
            return {"loss_luminet": batch.logits_s.sum() * 0}  # no batch statistics from 1 row
        loss = luminet_loss(batch.logits_s, batch.logits_t, self.alpha, self.temperature)
        return {"loss_luminet": loss}
