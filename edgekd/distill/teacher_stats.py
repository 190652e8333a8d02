"""What a loss measures of the teacher before training, each in one pass of the teacher (its
taps) over a dataset, 256 images a batch: nd's class-mean embeddings, cakld's confidence,
qfd's feature range."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

from edgekd.data import loader
from edgekd.distill.losses import teacher_confidence
from edgekd.distill.taps import Taps


@torch.no_grad()
def teacher_runs(teacher_taps: Taps, ds: Dataset, device) -> Iterator[tuple]:
    """(logits, stage map or None, embedding or None, labels) of the teacher per batch."""
    for x, y in loader(ds, 256):
        logits, feat, emb = teacher_taps.run(x.to(device))
        yield logits, feat, emb, torch.as_tensor(y)


def teacher_class_means(
    teacher_taps: Taps, ds: Dataset, num_classes: int, labeled: bool, device: torch.device
) -> torch.Tensor:
    """Mean teacher embedding per class over `ds` (true labels, or the teacher's top-1)."""
    sums: torch.Tensor | None = None
    counts = torch.zeros(num_classes)
    for logits, _, emb, y in teacher_runs(teacher_taps, ds, device):
        labels = y if labeled else logits.argmax(1).cpu()
        emb = emb.float().cpu()
        if sums is None:
            sums = torch.zeros(num_classes, emb.shape[1])
        sums.index_add_(0, labels, emb)
        counts += torch.bincount(labels, minlength=num_classes).float()
    assert sums is not None
    return sums / counts.clamp_min(1).unsqueeze(1)


def teacher_feature_range(teacher_taps: Taps, ds: Dataset, device) -> tuple[float, float]:
    """(min, max) of the teacher's embedding over every image of `ds` (QFD's quantizer range)."""
    lo, hi = math.inf, -math.inf
    for _, _, emb, _ in teacher_runs(teacher_taps, ds, device):
        lo, hi = min(lo, float(emb.min())), max(hi, float(emb.max()))
    return lo, hi


def teacher_confidence_over(teacher_taps: Taps, ds: Dataset, device: torch.device) -> float:
    """The teacher's top-1 probability averaged over every image of `ds` (CAKLD's beta)."""
    total, n = 0.0, 0
    for logits, _, _, _ in teacher_runs(teacher_taps, ds, device):
        total += float(teacher_confidence(logits)) * len(logits)
        n += len(logits)
    return total / max(n, 1)
