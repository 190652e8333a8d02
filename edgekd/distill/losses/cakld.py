"""CAKLD, the confidence-aware KL divergence of BitDistiller (Du et al., "BitDistiller:
Unleashing the Potential of Sub-4-Bit LLMs via Self-Distillation", ACL 2024): a blend of the
reverse and the forward KL, weighted by how confident the teacher is.

From the official code, DD-DuDa/BitDistiller at 9faaab8:
- `train/mytrainer.py` `cakld_loss` (lines 38-57): with p_s = softmax(student logits),
  p_t = softmax(teacher logits), no temperature,
      loss = beta * KL(p_s || p_t) + (1 - beta) * KL(p_t || p_s)
  (`F.kl_div(log p_t, p_s)` is KL(p_s || p_t), the "reverse" one), summed over tokens and
  averaged over the batch; the trainer trains on this loss alone (`compute_loss`, lines
  126-170: no cross-entropy term).
- `train/train.py` (lines 354-380): beta is the teacher's mean top-1 probability,
  max_c softmax(teacher)_c, averaged over samples, over training batches before training
  starts (and over processes). The official loop reads cakld_steps + 1 batches but divides
  by cakld_steps; here beta is the plain mean over the calibration images.

A confident teacher (beta near 1) makes the loss mostly the mode-seeking reverse KL; an unsure
one, the mean-seeking forward KL. Image classification has one "token" per sample: the sum
over tokens is that sample's value. beta is measured by the trainer on the calibration images
(`teacher_confidence`), kept in the loss's state (so in every checkpoint), logged and recorded
in the distill stage's history.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch, kl_rows


def cakld_loss(
    logits_student: torch.Tensor, logits_teacher: torch.Tensor, beta: float | torch.Tensor
) -> torch.Tensor:
    """beta * KL(p_s || p_t) + (1 - beta) * KL(p_t || p_s), batch mean."""
    log_p_s = F.log_softmax(logits_student, dim=1)
    log_p_t = F.log_softmax(logits_teacher, dim=1)
    reverse = kl_rows(log_p_s, log_p_t)
    forward = kl_rows(log_p_t, log_p_s)
    return (beta * reverse + (1 - beta) * forward).mean()


def teacher_confidence(logits_teacher: torch.Tensor) -> torch.Tensor:
    """Mean over samples of the teacher's top-1 probability."""
    return F.softmax(logits_teacher.float(), dim=1).max(dim=1).values.mean()


@register_loss("cakld")
class CAKLDLoss(DistillLoss):
    """CAKLD (BitDistiller, Du et al. 2024): reverse and forward KL, mixed by teacher confidence."""

    def __init__(self, ce: float = 0.0, weight: float = 1.0) -> None:
        super().__init__(ce)
        self.weight = weight
        self.register_buffer("beta", torch.tensor(float("nan")))

    def set_teacher_confidence(self, beta: float) -> None:
        """The teacher's mean top-1 probability on the calibration images, measured once."""
        if not 0 <= beta <= 1:
            raise ValueError(f"teacher confidence must lie in [0, 1], got {beta}")
        self.beta.fill_(float(beta))

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if torch.isnan(self.beta):
            raise RuntimeError("cakld loss: set_teacher_confidence() was not called")
        beta = self.beta.to(batch.logits_s)
        return {"loss_cakld": self.weight * cakld_loss(batch.logits_s, batch.logits_t, beta)}
