"""DisWOT, Dong et al., "DisWOT: Student Architecture Search for Distillation WithOut
Training" (CVPR 2023): how well a randomly initialised student already relates the samples
and the classes of a real batch the way the trained teacher does.

- relation distance: G = f f^T over the flattened last-stage features f [B, D] (any widths:
  G is B x B), rows L2-normalised; d_rel = ||G_t - G_s||_F^2 / B^2;
- semantic distance: the classifier-weight gradient of the cross-entropy on the batch,
  g = dCE/dW = (softmax(z) - onehot(y))^T e / B  [K classes x C embedding width] (the
  class-discriminative signal Grad-CAM weights its maps with), turned into a class-by-class
  correlation S = normalize_rows(g g^T) (K x K for any width);
  d_sem = ||S_t - S_s||_F^2 / K^2.
score = -(d_sem + d_rel): higher is better.

The teacher runs in eval mode. A randomly initialised student has no running statistics
worth the name, so it runs with batch statistics (train-mode BatchNorm), as it will at the
start of distillation, on a copy: the caller's model and its buffers are left untouched.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.taps import Taps


def _relation(a: torch.Tensor) -> torch.Tensor:
    a = a.flatten(1)
    return F.normalize(a @ a.T, dim=1)


def relation_distance(f_t: torch.Tensor, f_s: torch.Tensor) -> float:
    """||normalize_rows(f_t f_t^T) - normalize_rows(f_s f_s^T)||_F^2 / n^2, n = rows."""
    n = f_t.shape[0]
    return float((_relation(f_t) - _relation(f_s)).pow(2).sum() / n**2)


def classifier_gradient(logits: torch.Tensor, emb: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dCE/dW of a linear classifier z = W e + b, mean cross-entropy over the batch: [K, C]."""
    err = logits.softmax(1) - F.one_hot(y, logits.shape[1]).to(logits.dtype)
    return err.T @ emb.flatten(1) / logits.shape[0]


@torch.no_grad()
def features(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, layer: str | None, batch_stats: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(last-stage map [B, ...], classifier gradient [K, C]) of `model` on (x, y)."""
    if batch_stats:
        model = copy.deepcopy(model)
    was_training = model.training
    taps = Taps(model, features=True, embeddings=True, layer=layer, sample=x, role="model")
    try:
        model.train(batch_stats)
        logits, fmap, emb = taps.run(x)
    finally:
        taps.remove()
        model.train(was_training)
    return fmap, classifier_gradient(logits.float(), emb.float(), y)


def diswot_score(
    teacher: nn.Module,
    student: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    teacher_layer: str | None = None,
    student_layer: str | None = None,
) -> dict[str, float]:
    """{"diswot": -(d_sem + d_rel), "d_sem": ..., "d_rel": ...} on the batch (x, y)."""
    f_t, g_t = features(teacher, x, y, teacher_layer, batch_stats=False)
    f_s, g_s = features(student, x, y, student_layer, batch_stats=True)
    d_rel = relation_distance(f_t, f_s)
    d_sem = relation_distance(g_t, g_s)
    return {"diswot": -(d_sem + d_rel), "d_sem": d_sem, "d_rel": d_rel}
