"""QFD, Zhu, He and Wu, "Quantized Feature Distillation for Network Quantization" (AAAI 2024,
arXiv 2307.10638). No official code was found; this follows the paper's description:
the student (quantized during QAT) learns the teacher's *quantized* feature, the backbone's
output before the classifier, by an L2 loss, together with the cross-entropy on the labels.

The definition used here (edgekd's, where the paper gives no number):
- f_t: the teacher's embedding (the classifier's input), f_s: the student's, mapped by a learned
  bias-free Linear when the widths differ (the paper's student has the teacher's architecture);
- Q: a uniform `bits`-bit quantizer on the teacher feature's range [lo, hi], measured once on
  the calibration images before training (lo = 0 when every value is non-negative, as after a
  ReLU and pooling): s = (hi - lo) / (2^bits - 1), Q(f) = lo + s * clamp(round((f - lo) / s),
  0, 2^bits - 1). The range is stored in the checkpoint and reported;
- loss = ce * CE(s, y) + qfd * mean((A f_s - Q(f_t))^2) + kd * KD(T) (kd = 0 by default: the
  paper distils features alone).
The paper's first step fine-tunes the teacher with its feature quantizer in place, so that its
quantized representation is trained: `teacher_epochs=N` does it (`edgekd.distill.qfd_teacher`,
AdamW at `teacher_lr`, on a copy of the teacher, kept beside the phase's checkpoints). The
default, 0, applies Q to the trained teacher's features as they are (no extra training).

QFD is meant for the QAT phase (`--qat-kd-loss qfd`), where the student is quantized; it also
works as the distillation loss of the float phase.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch
from edgekd.distill.losses.kd import kd_loss


def quantize_feature(f: torch.Tensor, lo: float, hi: float, bits: int) -> torch.Tensor:
    """The uniform `bits`-bit quantizer of the module docstring on [lo, hi]."""
    levels = 2**bits - 1
    scale = max(hi - lo, 1e-12) / levels
    return lo + scale * torch.clamp(torch.round((f - lo) / scale), 0, levels)


def quantizer_range(lo: float, hi: float) -> tuple[float, float]:
    """The quantizer's range from the teacher feature's measured (min, max): lo is lowered to 0
    when every value is non-negative (the module docstring)."""
    if not lo <= hi:
        raise ValueError(f"feature range must have lo <= hi, got {lo}, {hi}")
    return min(float(lo), 0.0), float(hi)


def qfd_loss(emb_student: torch.Tensor, emb_teacher: torch.Tensor, lo: float, hi: float,
             bits: int) -> torch.Tensor:  # fmt: skip
    """Mean squared error between the student's feature and the teacher's quantized one."""
    return F.mse_loss(emb_student, quantize_feature(emb_teacher, lo, hi, bits))


@register_loss("qfd")
class QFDLoss(DistillLoss):
    """QFD (Zhu et al. 2023): L2 to the teacher's quantized feature, for the QAT phase."""

    needs = frozenset({"embeddings"})
    zero_at_match = False  # Q(f_t) != f_t, and the adapter is learned

    def __init__(self, ce: float = 1.0, qfd: float = 1.0, bits: int = 8, kd: float = 0.0,
                 temperature: float = 4.0, teacher_epochs: int = 0,
                 teacher_lr: float = 1e-4) -> None:  # fmt: skip
        super().__init__(ce)
        if not 1 <= bits <= 16:
            raise ValueError(f"bits must lie in 1..16, got {bits}")
        if teacher_epochs < 0 or teacher_lr <= 0:
            raise ValueError(f"teacher_epochs must be >= 0 and teacher_lr > 0, got "
                             f"{teacher_epochs}, {teacher_lr}")  # fmt: skip
        self.teacher_epochs, self.teacher_lr = teacher_epochs, teacher_lr
        self.qfd, self.bits, self.kd, self.temperature = qfd, bits, kd, temperature
        self.adapter: nn.Module = nn.Identity()
        self.register_buffer("feature_range", torch.tensor([float("nan"), float("nan")]))

    def setup(self, shapes: dict[str, tuple[int, ...]]) -> None:
        d_s, d_t = shapes["emb_s"][-1], shapes["emb_t"][-1]
        if d_s != d_t:
            self.adapter = nn.Linear(d_s, d_t, bias=False)

    def set_teacher_feature_range(self, lo: float, hi: float) -> None:
        """The teacher's feature range on the calibration images (lo = 0 if none negative)."""
        self.feature_range.copy_(torch.tensor(quantizer_range(lo, hi)))

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if torch.isnan(self.feature_range).any():
            raise RuntimeError("qfd loss: set_teacher_feature_range() was not called")
        lo, hi = (float(v) for v in self.feature_range)
        terms = {"loss_qfd": self.qfd * qfd_loss(self.adapter(batch.emb_s), batch.emb_t, lo,
                                                 hi, self.bits)}  # fmt: skip
        if self.kd:
            terms["loss_kd"] = self.kd * kd_loss(batch.logits_s, batch.logits_t, self.temperature)
        return terms
