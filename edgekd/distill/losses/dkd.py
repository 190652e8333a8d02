"""Decoupled KD, Zhao et al., "Decoupled Knowledge Distillation" (CVPR 2022).

With p = softmax(z/T) split into the target class and the rest:
- TCKD = KL(b_t || b_s) on the binary distribution b = [p_y, 1 - p_y];
- NCKD = KL(q_t || q_s) on q = softmax over the non-target classes only (z_y removed);
loss = min(progress / warmup, 1) * (alpha * TCKD + beta * NCKD) * T^2, batch mean.
As in the official code the non-target softmax is taken with the target logit pushed down by
1000 (equivalent to removing it). The warm-up is in epochs (the paper: 20 of 240).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch, kl_rows


def dkd_loss(
    logits_student: torch.Tensor,
    logits_teacher: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    beta: float,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha * TCKD * T^2, beta * NCKD * T^2), each a batch mean."""
    gt = F.one_hot(target, logits_student.shape[1]).bool()
    p_s = F.softmax(logits_student / temperature, dim=1)
    p_t = F.softmax(logits_teacher / temperature, dim=1)

    def binary(p: torch.Tensor) -> torch.Tensor:
        p_y = (p * gt).sum(dim=1, keepdim=True)
        return torch.cat([p_y, (p * ~gt).sum(dim=1, keepdim=True)], dim=1)

    b_s, b_t = binary(p_s), binary(p_t)
    tckd = kl_rows(torch.log(b_t), torch.log(b_s)).mean()
    log_q_s = F.log_softmax(logits_student / temperature - 1000.0 * gt, dim=1)
    log_q_t = F.log_softmax(logits_teacher / temperature - 1000.0 * gt, dim=1)
    nckd = kl_rows(log_q_t, log_q_s).mean()
    return alpha * tckd * temperature**2, beta * nckd * temperature**2


@register_loss("dkd")
class DKDLoss(DistillLoss):
    """Decoupled KD (Zhao et al. 2022): alpha*TCKD + beta*NCKD with a linear warm-up."""

    def __init__(
        self,
        ce: float = 1.0,
        alpha: float = 1.0,
        beta: float = 8.0,
        temperature: float = 4.0,
        warmup: float = 1.0,
    ) -> None:
        super().__init__(ce)
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0 epochs, got {warmup}")
        self.alpha, self.beta, self.temperature, self.warmup = alpha, beta, temperature, warmup

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        ramp = min(batch.progress / self.warmup, 1.0) if self.warmup > 0 else 1.0
        tckd, nckd = dkd_loss(
            batch.logits_s, batch.logits_t, batch.labels(), self.alpha, self.beta, self.temperature
        )
        return {"loss_tckd": ramp * tckd, "loss_nckd": ramp * nckd}
