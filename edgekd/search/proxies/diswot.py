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

`diswot_score` is one draw: one teacher, one student, one batch. A trained teacher runs in
eval mode. A randomly initialised network has no running statistics worth the name, so it
runs with batch statistics (train-mode BatchNorm, everything else in eval mode: no dropout
noise), as it will at the start of distillation, on a copy: the caller's model and its
buffers are left untouched.

`DiswotReference` is what `edgekd search` ranks by: the paper compares randomly initialised
teacher and student networks, so the teacher's side is its architecture at random init (seed
i), against the student at the same seed i, averaged over several seeds and scoring batches.
Measured on the digits benchmark (benchmarks/search_proxies.py): a trained teacher that fits
the scoring batch leaves its classifier gradient to a few near-misses (its 3 largest
per-sample errors carry 56-89% of its error), so d_sem against it is noise; and one draw
decides little (a candidate's d_sem moves between draws by more than the candidates differ).
This form ranked better than parameter count for the resnet18 teacher it was chosen on, not
for a held-out efficientnet_b0 teacher (README, "Student search"). When the teacher's
architecture is unknown (TorchScript, torch.export or pickled teachers without a timm name),
the trained teacher is the reference.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.taps import Taps
from edgekd.search.proxies._modes import batch_statistics


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
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    layer: str | None,
    batch_stats: bool,
    keep: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(last-stage map [B, ...], classifier gradient [K, C]) of `model` on (x, y). With
    `batch_stats` the forward uses batch statistics (`batch_statistics`), on a copy unless
    `keep` is False; else eval mode."""
    if batch_stats and keep:
        model = copy.deepcopy(model)
    was_training = model.training
    taps = Taps(model, features=True, embeddings=True, layer=layer, sample=x, role="model")
    try:
        batch_statistics(model) if batch_stats else model.eval()
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
    teacher_batch_stats: bool = False,
) -> dict[str, float]:
    """{"diswot": -(d_sem + d_rel), "d_sem": ..., "d_rel": ...} on the batch (x, y).
    `teacher_batch_stats`: the teacher is at random init too, so it runs with batch
    statistics like the student (as `DiswotReference` runs it)."""
    f_t, g_t = features(teacher, x, y, teacher_layer, batch_stats=teacher_batch_stats)
    f_s, g_s = features(student, x, y, student_layer, batch_stats=True)
    d_rel = relation_distance(f_t, f_s)
    d_sem = relation_distance(g_t, g_s)
    return {"diswot": -(d_sem + d_rel), "d_sem": d_sem, "d_rel": d_rel}


class DiswotReference:
    """The teacher's side of every DisWOT draw, computed once per search.

    `teacher_at(seed)` returns the teacher network for a draw: its architecture at random
    init with that seed, or (`trained=True`) the one trained teacher for every seed. A draw
    is (seed, batch) for each seed in `seeds` and each (x, y) in `batches`."""

    def __init__(
        self,
        teacher_at: Callable[[int], nn.Module],
        batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
        seeds: Sequence[int],
        trained: bool = False,
        source: str = "",
        outputs_only: bool = False,
    ) -> None:
        self.seeds, self.batches, self.trained = list(seeds), list(batches), trained
        self.source = source  # what the teacher side is, for reports
        # outputs_only: a teacher whose layers cannot be hooked (TorchScript) gives only its
        # logits; DisWOT's relation term is then taken on the logits of both networks and the
        # semantic term (a classifier gradient) is left out -- edgekd's variant, not the paper's
        self.outputs_only = outputs_only
        # DisWOT as its official code computes it (`diswot_official.OfficialDiswot`), scored
        # beside this one where the teacher's layers can be hooked; set by the caller
        self.official = None
        self.draws = []
        for seed in self.seeds:
            teacher = teacher_at(seed)
            for x, y in self.batches:
                if outputs_only:
                    with torch.no_grad():
                        self.draws.append((seed, x, y, teacher.eval()(x).float(), None))
                    continue
                # a network built for this draw needs no copy (batch statistics do not read
                # the running statistics they update)
                f_t, g_t = features(teacher, x, y, None, batch_stats=not trained, keep=False)
                self.draws.append((seed, x, y, f_t, g_t))

    def score(self, student_at: Callable[[int], nn.Module]) -> dict[str, float]:
        """{"diswot", "d_sem", "d_rel"} averaged over the draws; `student_at(seed)` builds
        the candidate at random init with that seed (a fresh model each call)."""
        d_sem = d_rel = 0.0
        student, built = None, None
        for seed, x, y, f_t, g_t in self.draws:
            if built != seed:
                student, built = student_at(seed), seed
            if self.outputs_only:
                batch_statistics(student)
                with torch.no_grad():
                    d_rel += relation_distance(f_t, student(x).float())
                continue
            f_s, g_s = features(student, x, y, None, batch_stats=True, keep=False)
            d_sem += relation_distance(g_t, g_s)
            d_rel += relation_distance(f_t, f_s)
        n = len(self.draws)
        return {"diswot": -(d_sem + d_rel) / n, "d_sem": d_sem / n, "d_rel": d_rel / n}
