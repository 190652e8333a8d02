"""MIX-KD's per-sample-std temperature loss, Choi et al., "Understanding the Role of Mixup in
Knowledge Distillation: An Empirical Study" (WACV 2023).

From the official code, hchoi71/MIX-KD at 6e8c149, `distiller_zoo/MIXSTD.py`:

    sigma_t = std(t, over classes, unbiased)    (L17)   one temperature per sample and model
    sigma_s = std(s, over classes, unbiased)    (L18)   not detached: gradients flow through it
    loss_cls = gamma * sum(-log_softmax(s / sigma_s) * y) / B         (L21-22)
    loss_div = alpha * KLDiv(batchmean)(log_softmax(s / sigma_s),
                                         softmax(t / sigma_t))         (L13, L24-27)

with `gamma` 0.1 and `alpha` 0.9 (`train_student_MIXSTD.py` L66-67) and no T^2 factor. The
student and the teacher each get their own temperature, the std of their own logits. The CE
term is taken on the std-scaled student logits, as the official code takes it (with hard
labels here; `y` is the mixup soft label there). Dividing by the std is the same softmax as
z-scoring the logits, since a softmax ignores a shift per row.

One deliberate difference: the std is clamped below at 1e-6, so a row of equal logits (a
freshly initialised head) gives a finite loss instead of a division by zero. The official
code pairs this loss with partial mixup of the inputs (`--kd-augment mixup`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch

MIN_STD = 1e-6


def std_scaled(logits: torch.Tensor) -> torch.Tensor:
    """Each row divided by its own unbiased standard deviation over the classes."""
    return logits / logits.std(dim=1, keepdim=True).clamp_min(MIN_STD)


def mixstd_loss(logits_student: torch.Tensor, logits_teacher: torch.Tensor) -> torch.Tensor:
    """KL(softmax(t / sigma_t) || softmax(s / sigma_s)), batch mean (MIXSTD.py L24-27)."""
    log_p_s = F.log_softmax(std_scaled(logits_student), dim=1)
    p_t = F.softmax(std_scaled(logits_teacher), dim=1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean")


@register_loss("mixstd")
class MixSTDLoss(DistillLoss):
    """MIX-KD (Choi et al. 2023): KL at a per-sample temperature, the std of the logits."""

    def __init__(self, ce: float = 0.1, kd: float = 0.9) -> None:
        super().__init__(ce)
        if kd < 0:
            raise ValueError(f"kd weight must be >= 0, got {kd}")
        self.kd = kd

    def ce_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        """Cross-entropy on the std-scaled student logits (MIXSTD.py L21-22)."""
        if batch.target is None or self.ce == 0:
            return {}
        # with --kd-augment mixup, the soft mixed label as the official code (MIXSTD.py L21-22)
        return {"loss_ce": self.ce * F.cross_entropy(std_scaled(batch.logits_s),
                                                     batch.ce_target())}  # fmt: skip

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        return {"loss_kd": self.kd * mixstd_loss(batch.logits_s, batch.logits_t)}
