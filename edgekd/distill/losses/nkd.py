"""Normalized KD, Yang et al., "From Knowledge Distillation to Self-Knowledge Distillation: A
Unified Approach with Normalized Loss and Customized Soft Labels" (ICCV 2023).

target term:     -p_t[y] * log p_s[y] at T = 1, the teacher's p_t[y] detached;
non-target term: -gamma * T^2 * sum_{j != y} softmax(t_nt / T)_j * log_softmax(s_nt / T)_j,
where t_nt, s_nt are the logits with the target class removed (each side renormalised);
both batch means. The module adds `ce` times cross-entropy (the paper trains with CE + NKD).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch


def nkd_loss(
    logits_student: torch.Tensor,
    logits_teacher: torch.Tensor,
    target: torch.Tensor,
    temperature: float,
    gamma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(target term, non-target term), each a batch mean."""
    n, c = logits_student.shape
    y = target.view(n, 1)
    log_p_s = F.log_softmax(logits_student, dim=1)
    p_t = F.softmax(logits_teacher, dim=1)
    loss_t = -(p_t.gather(1, y).detach() * log_p_s.gather(1, y)).mean()
    keep = ~F.one_hot(target, c).bool()
    s_nt = logits_student[keep].view(n, c - 1)
    t_nt = logits_teacher[keep].view(n, c - 1)
    inner = (F.softmax(t_nt / temperature, 1) * F.log_softmax(s_nt / temperature, 1)).sum(1)
    return loss_t, -gamma * temperature**2 * inner.mean()


@register_loss("nkd")
class NKDLoss(DistillLoss):
    """Normalized KD (Yang et al. 2023): teacher-weighted target term + normalised non-target KD."""

    zero_at_match = False  # cross-entropy-like terms: minimal, not zero, at a match

    def __init__(self, ce: float = 1.0, temperature: float = 1.0, gamma: float = 1.5) -> None:
        super().__init__(ce)
        self.temperature, self.gamma = temperature, gamma

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        loss_t, loss_nt = nkd_loss(
            batch.logits_s, batch.logits_t, batch.labels(), self.temperature, self.gamma
        )
        return {"loss_nkd_target": loss_t, "loss_nkd_nontarget": loss_nt}
