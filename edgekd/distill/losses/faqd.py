"""FAQD's feature-affinity loss in its official form (Li et al. 2023; official code lzj994/FAQD
at d64d949, `CIFAR/quant_distill_cifar100.py`: fa_loss L86-107, the adapters L73-84, the
training step L318-330). `fa` is edgekd's single-stage variant of it (see fa.py).

Per stage, for the student map F_s [B, C_s, H, W] and the teacher's F_t resized to (H, W)
(bilinear, align_corners=True): each position's channel vector is divided by its L2 norm
(+1e-5), A = F^T F is the [B, HW, HW] matrix of cosine affinities, and

    fa(F_s, F_t) = ||A_s - A_t||_1 / (HW)^2,

the L1 norm over the *whole* batch (a sum over samples, not a mean), as the official code.
The student's map first goes through a learned 1x1 convolution (with bias) and a ReLU that
keeps its channels (the official `additional_conv20`). Channel counts of the two models need
not match: an affinity is HW x HW.

    loss = ce * NLL(log_softmax(s), y) + kd * MSE(s, t) + fa * sum_stages fa(.)

with the official defaults label_coef 0.3, KD_coef 1 (MSE on the logits, `--KD_loss MSE`),
fa_coef 0.1, and three stages (the CIFAR ResNets' three). On timm models the stages are
edgekd's stages 1-3 (reductions 4, 8, 16; stage 4 is often 1x1 at small inputs, where every
affinity is 1); a ViT's token stages are laid out as square maps. The teacher's stage maps
are not cached (they are large): the teacher runs live.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch
from edgekd.distill.losses.ofa import parse_stages
from edgekd.distill.taps import as_map


def _affinity(feat: torch.Tensor) -> torch.Tensor:
    b, c = feat.shape[:2]
    f = feat.reshape(b, c, -1)
    f = f / (f.norm(p=2, dim=1, keepdim=True) + 1e-5)
    return f.transpose(1, 2) @ f


def faqd_loss(feat_student: torch.Tensor, feat_teacher: torch.Tensor) -> torch.Tensor:
    """||A_s - A_t||_1 / (HW)^2 over the whole batch (see the module docstring)."""
    h, w = feat_student.shape[-2:]
    ref = F.interpolate(feat_teacher, size=(h, w), mode="bilinear", align_corners=True)
    return (_affinity(feat_student) - _affinity(ref)).abs().sum() / (h * w) ** 2


@register_loss("faqd")
class FAQDLoss(DistillLoss):
    """FAQD official form (Li et al. 2023): L1 affinity loss over 3 stages + MSE on logits."""

    needs = frozenset({"stages", "teacher_stages"})
    zero_at_match = False  # the adapters are learned

    def __init__(self, ce: float = 0.3, kd: float = 1.0, fa: float = 0.1,
                 stages: str = "1+2+3") -> None:  # fmt: skip
        super().__init__(ce)
        self.kd, self.fa = kd, fa
        self.stages = parse_stages(stages)
        self.adapters = nn.ModuleList()

    def setup(self, shapes: dict) -> None:
        have_s, have_t = shapes["stages_s"], shapes["stages_t"]
        missing = [k for k in self.stages if k > min(len(have_s), len(have_t))]
        if missing:
            raise ValueError(f"the models have {len(have_s)} and {len(have_t)} stage(s), "
                             f"stages asks for {missing}")  # fmt: skip
        self.adapters = nn.ModuleList()
        for k in self.stages:
            shape = have_s[k - 1]
            c = shape[0] if len(shape) == 3 else shape[-1]  # maps [C, H, W]; tokens [N, C]
            self.adapters.append(nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU()))

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if len(self.adapters) != len(self.stages):
            raise RuntimeError("faqd loss: setup() was not called before training")
        if batch.stages_s is None or batch.stages_t is None:
            raise RuntimeError("faqd loss: the batch holds no stage maps")
        fa = sum(
            faqd_loss(adapter(as_map(batch.stages_s[k - 1])), as_map(batch.stages_t[k - 1]))
            for k, adapter in zip(self.stages, self.adapters, strict=True)
        )
        return {"loss_kd": self.kd * F.mse_loss(batch.logits_s, batch.logits_t),
                "loss_fa": self.fa * fa}  # fmt: skip
