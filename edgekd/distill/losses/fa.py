"""Feature Affinity, Li et al., "Feature Affinity Assisted Knowledge Distillation and
Quantization of Deep Neural Networks on Label-Free Data" (FAQD, 2023).

For a map [C, H, W], the affinity A = F F^T of the HW x HW cosine similarities between the
channel vectors at each pair of positions (F: [HW, C], rows L2-normalised). The teacher map is
resized to the student's spatial size; channel counts may differ. Per sample the loss is the
mean squared entry of A_s - A_t, i.e. ||A_s - A_t||_F^2 / (HW)^2; batch mean.

The fast variant never forms A: with a Gaussian R [HW, k] (entries N(0, 1)),
E ||(A_s - A_t) R||_F^2 / k = ||A_s - A_t||_F^2, and (A R) = F (F^T R) costs O(HW C k).
Like the paper the module pairs it with KD on logits (no labels needed):
loss = ce * CE + kd * KD(T) + fa * FA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses._spatial import resize_to
from edgekd.distill.losses.base import DistillLoss, KDBatch
from edgekd.distill.losses.kd import kd_loss


def _unit_positions(feat: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, HW, C] with each position's channel vector L2-normalised."""
    return F.normalize(feat.flatten(2).transpose(1, 2), dim=2)


def fa_loss(feat_student: torch.Tensor, feat_teacher: torch.Tensor) -> torch.Tensor:
    """Exact feature-affinity loss, batch mean of ||A_s - A_t||_F^2 / (HW)^2."""
    f_s = _unit_positions(feat_student)
    f_t = _unit_positions(resize_to(feat_teacher, feat_student.shape[-2:]))
    diff = f_s @ f_s.transpose(1, 2) - f_t @ f_t.transpose(1, 2)
    return diff.pow(2).mean(dim=(1, 2)).mean()


def fa_loss_fast(
    feat_student: torch.Tensor, feat_teacher: torch.Tensor, projection: torch.Tensor
) -> torch.Tensor:
    """Random-projection estimate of `fa_loss` with `projection` R [HW, k] ~ N(0, 1)."""
    f_s = _unit_positions(feat_student)
    f_t = _unit_positions(resize_to(feat_teacher, feat_student.shape[-2:]))
    hw, k = projection.shape
    diff = f_s @ (f_s.transpose(1, 2) @ projection) - f_t @ (f_t.transpose(1, 2) @ projection)
    return (diff.pow(2).sum(dim=(1, 2)) / (k * hw * hw)).mean()


@register_loss("fa")
class FALoss(DistillLoss):
    """Feature Affinity (FAQD, Li et al. 2023): match spatial cosine affinities, plus KD."""

    needs = frozenset({"features"})

    def __init__(
        self,
        ce: float = 1.0,
        kd: float = 1.0,
        fa: float = 10.0,
        temperature: float = 4.0,
        fast: bool = False,
        k: int = 32,
    ) -> None:
        super().__init__(ce)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.kd, self.fa, self.temperature, self.fast, self.k = kd, fa, temperature, fast, k

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if self.fast:
            hw = batch.feat_s.shape[-2] * batch.feat_s.shape[-1]
            r = torch.randn(hw, self.k, device=batch.feat_s.device, dtype=batch.feat_s.dtype)
            fa = fa_loss_fast(batch.feat_s, batch.feat_t, r)
        else:
            fa = fa_loss(batch.feat_s, batch.feat_t)
        kd = kd_loss(batch.logits_s, batch.logits_t, self.temperature)
        return {"loss_kd": self.kd * kd, "loss_fa": self.fa * fa}
