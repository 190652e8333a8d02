"""FitNets, Romero et al., "FitNets: Hints for Thin Deep Nets" (ICLR 2015).

A learned 1x1 convolution (with batch norm, as in mdistiller's ConvReg) maps the student's
last-stage map to the teacher's channels, resized to the teacher's spatial size; the hint loss
is `hint * MSE(adapter(f_s), f_t)` (mean over every element). The module adds `ce` times CE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses._spatial import resize_to
from edgekd.distill.losses.base import DistillLoss, KDBatch


def fitnet_loss(feat_student_adapted: torch.Tensor, feat_teacher: torch.Tensor) -> torch.Tensor:
    """MSE between the adapted student map and the teacher map (resized to the teacher's)."""
    return F.mse_loss(resize_to(feat_student_adapted, feat_teacher.shape[-2:]), feat_teacher)


@register_loss("fitnet")
class FitNetLoss(DistillLoss):
    """FitNets hint (Romero et al. 2015): MSE to the teacher's map through a learned 1x1 adapter."""

    needs = frozenset({"features"})
    zero_at_match = False  # the adapter is learned, so a match needs a trained adapter

    def __init__(self, ce: float = 1.0, hint: float = 100.0) -> None:
        super().__init__(ce)
        self.hint = hint
        self.adapter: nn.Module | None = None

    def setup(self, shapes: dict[str, tuple[int, ...]]) -> None:
        c_s, c_t = shapes["feat_s"][0], shapes["feat_t"][0]
        self.adapter = nn.Sequential(nn.Conv2d(c_s, c_t, 1, bias=False), nn.BatchNorm2d(c_t))

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if self.adapter is None:
            raise RuntimeError("fitnet loss: setup() was not called before training")
        return {"loss_hint": self.hint * fitnet_loss(self.adapter(batch.feat_s), batch.feat_t)}
