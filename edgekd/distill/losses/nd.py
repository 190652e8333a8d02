"""Norm and Direction, Wang et al., "Improving Knowledge Distillation via Regularizing Feature
Norm and Direction" (2023).

The teacher's class-mean embeddings c_k are computed once over the training set (pre-logits
vectors, eval transform); e_k = c_k / ||c_k||. Per sample with class y, student embedding s
and teacher embedding t:  ND = 1 - <s, e_y> / max(||s||, ||t||), batch mean. It pulls the
student's embedding towards the teacher's class direction and rewards a large norm. As in the
paper it is added to KD: loss = ce * CE + kd * KD(T) + nd * ND. When the student's embedding
width differs from the teacher's, a learned linear adapter (no bias) maps it first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.losses._registry import register_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch
from edgekd.distill.losses.kd import kd_loss


def nd_loss(
    emb_student: torch.Tensor,
    emb_teacher: torch.Tensor,
    class_means: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """Batch mean of 1 - <s, e_y> / max(||s||, ||t||); class_means [K, D] need not be unit."""
    e = F.normalize(class_means, dim=1)[target]
    max_norm = torch.maximum(emb_student.norm(dim=1), emb_teacher.norm(dim=1))
    return (1 - (emb_student * e).sum(dim=1) / max_norm).mean()


@register_loss("nd")
class NDLoss(DistillLoss):
    """Norm and Direction (Wang et al. 2023): KD plus a pull towards teacher class centres."""

    needs = frozenset({"embeddings"})
    zero_at_match = False

    def __init__(
        self, ce: float = 1.0, kd: float = 1.0, nd: float = 1.0, temperature: float = 4.0
    ) -> None:
        super().__init__(ce)
        self.kd, self.nd, self.temperature = kd, nd, temperature
        self.adapter: nn.Module = nn.Identity()
        self.register_buffer("class_means", torch.empty(0))

    def setup(self, shapes: dict[str, tuple[int, ...]]) -> None:
        d_s, d_t = shapes["emb_s"][-1], shapes["emb_t"][-1]
        if d_s != d_t:
            self.adapter = nn.Linear(d_s, d_t, bias=False)

    def set_class_means(self, means: torch.Tensor) -> None:
        """The teacher's class-mean embeddings [K, D], computed once over the training set."""
        self.class_means = means.detach().clone()

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if self.class_means.numel() == 0:
            raise RuntimeError("nd loss: set_class_means() was not called before training")
        emb_s = self.adapter(batch.emb_s)
        nd = nd_loss(emb_s, batch.emb_t, self.class_means.to(emb_s), batch.labels())
        kd = kd_loss(batch.logits_s, batch.logits_t, self.temperature)
        return {"loss_kd": self.kd * kd, "loss_nd": self.nd * nd}
