"""Adaptive KL, Wu et al., "Rethinking Kullback-Leibler Divergence in Knowledge Distillation
for Large Language Models" (2024).

Sort the classes by teacher probability; the head is the top classes until their cumulative
teacher mass first exceeds mu (the top class always counts as head), the tail the rest. With
gaps g_head / g_tail = sum |p_t - p_s| over each part (student probabilities detached),
loss = g_head/(g_head+g_tail) * KL(p_t || p_s) + g_tail/(g_head+g_tail) * KL(p_s || p_t),
per sample, batch mean, at temperature T (1 in the paper).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch, kl_rows


def head_tail_ratios(
    p_t: torch.Tensor, p_s: torch.Tensor, mu: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample weights of forward (head) and reverse (tail) KL, [B] each."""
    sorted_t, idx = p_t.sort(dim=1, descending=True)
    gaps = (sorted_t - p_s.detach().gather(1, idx)).abs()
    tail = sorted_t.cumsum(dim=1) > mu
    tail[:, 0] = False
    g_head = gaps.masked_fill(tail, 0.0).sum(dim=1)
    g_tail = gaps.masked_fill(~tail, 0.0).sum(dim=1)
    total = (g_head + g_tail).clamp_min(torch.finfo(p_t.dtype).tiny)
    return g_head / total, g_tail / total


def akl_loss(
    logits_student: torch.Tensor, logits_teacher: torch.Tensor, mu: float, temperature: float
) -> torch.Tensor:
    log_p_s = F.log_softmax(logits_student / temperature, dim=1)
    log_p_t = F.log_softmax(logits_teacher / temperature, dim=1)
    w_head, w_tail = head_tail_ratios(log_p_t.exp(), log_p_s.exp(), mu)
    fkl, rkl = kl_rows(log_p_t, log_p_s), kl_rows(log_p_s, log_p_t)
    return (w_head * fkl + w_tail * rkl).mean()


@register_loss("akl")
class AKLLoss(DistillLoss):
    """Adaptive KL (Wu et al. 2024): forward/reverse KL mixed by head and tail gaps."""

    def __init__(
        self, ce: float = 1.0, beta: float = 1.0, mu: float = 0.5, temperature: float = 1.0
    ) -> None:
        super().__init__(ce)
        if not 0 < mu < 1:
            raise ValueError(f"mu must lie in (0, 1), got {mu}")
        self.beta, self.mu, self.temperature = beta, mu, temperature

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        loss = akl_loss(batch.logits_s, batch.logits_t, self.mu, self.temperature)
        return {"loss_akl": self.beta * loss}
