"""What every distillation loss receives (`KDBatch`) and the base class of the registered modules.

A loss module's `forward(batch)` returns a dict of named, already weighted loss terms; the
trainer sums them and logs each one. Losses that need more than logits say so in `needs`:

- ``"features"``: a last-stage feature map of student and teacher ([B, C, H, W]), hooked by
  `edgekd.distill.taps`;
- ``"embeddings"``: the pre-logits vector of each ([B, D], the classifier's input);
- ``"stages"``: the student's stage outputs 1..4 (`KDBatch.stages_s`, raw: [B, C, H, W] maps
  or a ViT's [B, N, C] tokens); the teacher is not tapped, so its logits may come from the
  cache or an ONNX teacher;
- ``"teacher_stages"``: the teacher's stages 1..4 too (`KDBatch.stages_t`); they are not
  cached, so the teacher runs live.

Without labels (label-free data) `batch.target` is None: cross-entropy terms are dropped and
losses defined on the true class use the teacher's top-1 class instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# what a loss reads from inside the teacher (a TorchScript or ONNX teacher cannot give it)
TEACHER_NEEDS = frozenset({"features", "embeddings", "teacher_stages"})


@dataclass
class KDBatch:
    """One training step's outputs. `progress` counts epochs done (fractional, > 0)."""

    logits_s: torch.Tensor
    logits_t: torch.Tensor
    target: torch.Tensor | None = None
    feat_s: torch.Tensor | None = None
    feat_t: torch.Tensor | None = None
    emb_s: torch.Tensor | None = None
    emb_t: torch.Tensor | None = None
    progress: float = 1.0
    stages_s: list[torch.Tensor] | None = None
    stages_t: list[torch.Tensor] | None = None  # "teacher_stages": the teacher's, the same way
    # mixed soft labels [B, C] (--kd-augment mixup); `target` is then their top class
    target_soft: torch.Tensor | None = None

    def ce_target(self) -> torch.Tensor | None:
        """What a cross-entropy term is taken against: the soft labels, else the labels."""
        return self.target_soft if self.target_soft is not None else self.target

    def labels(self) -> torch.Tensor:
        """The true labels, or the teacher's top-1 class when the data has none."""
        return self.target if self.target is not None else self.logits_t.argmax(dim=1)


def kl_rows(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row from log-probabilities, [B]."""
    return (log_p.exp() * (log_p - log_q)).sum(dim=1)


class DistillLoss(nn.Module):
    """Base class: a `ce` weight on the labels (when there are labels) plus the method's terms.

    Class attributes describe the method to the trainer and to the registry's contract test:
    `needs` (see the module docstring), `zero_at_match` (the distillation terms vanish when the
    student's outputs equal the teacher's).
    """

    needs: frozenset[str] = frozenset()
    zero_at_match: bool = True

    def __init__(self, ce: float = 1.0) -> None:
        super().__init__()
        if ce < 0:
            raise ValueError(f"ce weight must be >= 0, got {ce}")
        self.ce = ce

    def setup(self, shapes: dict[str, tuple[int, ...]]) -> None:  # noqa: B027 (optional hook)
        """Called once before training with the shapes of the tapped tensors (without the
        batch dimension: keys feat_s, feat_t, emb_s, emb_t); build adapters here."""

    def ce_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        if batch.target is None or self.ce == 0:
            return {}
        return {"loss_ce": self.ce * F.cross_entropy(batch.logits_s, batch.ce_target())}

    def distill_terms(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, batch: KDBatch) -> dict[str, torch.Tensor]:
        return {**self.ce_terms(batch), **self.distill_terms(batch)}
