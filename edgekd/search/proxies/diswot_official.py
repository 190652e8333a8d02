"""DisWOT as its official code computes it: lliai/DisWOT-CVPR2023 at dffe4e6,
`exps/parse_nb201_distill.py` `compute_diswot_procedure` (lines 397-455), with
`distiller_zoo/SP.py` (`Similarity`) and `distiller_zoo/ICKD.py` (`ICKDLoss.batch_loss`).

What that procedure does, per candidate:
- teacher and student with every Conv2d and Linear weight drawn from N(0, 1), biases zero,
  BatchNorm/GroupNorm weight 1 and bias 0 (`network_weight_gaussian_init`, lines 144-161);
  both stay in train mode (batch statistics);
- one real batch (x, y) of 64; `forward_with_features` gives the pooled embedding e [B, C]
  (the classifier's input: `features[-1]` in NAS-Bench-201's `cnn.py`) and the logits;
- the cross-entropy of each network is back-propagated and the classifier-weight gradient
  g = dCE/dW [K, C] taken from `classifier.weight.grad` (line 440);
- relation term (SP, line 444): G = normalize_rows(e e^T) on the pooled embeddings,
  sp = ||G_t - G_s||_F^2 / B^2;
- semantic term (ICKD, line 446): g viewed as K samples of C channels x 1 position; per class
  k the C x C inter-channel correlation g_k g_k^T, rows L2-normalised; the squared
  difference summed over (K, C, C) and divided by C * K. Each normalised row i is
  sign(g_ki) * g_k / |g_k|, so per class the term is 2 - 2 * a_k * cos(g_t,k, g_s,k), with a_k
  the mean over channels of sign(g_t,ki) * sign(g_s,ki): it lies in [0, 4].
- score = -(sp + ickd): higher is better.

Where this differs from the released script, each an edgekd choice:
- **Widths.** ICKD needs the teacher's and the student's embedding widths to be equal (the
  NAS-Bench-201 cells all end at 64 channels). For a student of another width its gradient
  [K, C_s] is mapped into the teacher's C_t with one fixed Gaussian matrix R [C_s, C_t] /
  sqrt(C_s) (seed `PROJECTION_SEED`; a Johnson-Lindenstrauss projection, which keeps the
  inner products on average); equal widths are compared as they are.
- **The teacher's gradient is taken once.** The script never zeroes `tnet`'s gradient, so the
  teacher's side of candidate i is the sum of the gradients of batches 1..i and depends on
  the order the candidates are read in. Here it is the gradient on the scoring batch.
- **One batch for every candidate** (the script takes the loader's next batch per candidate):
  the first scoring batch, so a candidate's score does not depend on its place in the list.
- **Dropout and drop-path off** (eval mode apart from the normalisation layers, as every
  edgekd proxy runs): NAS-Bench-201's cells have none, timm candidates do.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.taps import Taps
from edgekd.search.proxies._modes import batch_statistics
from edgekd.search.proxies.diswot import classifier_gradient, relation_distance

PROJECTION_SEED = 0


@torch.no_grad()
def gaussian_init(model: nn.Module) -> nn.Module:
    """`network_weight_gaussian_init`: Conv2d and Linear weights N(0, 1) and biases 0,
    BatchNorm2d/GroupNorm weight 1 and bias 0; every other module as built. In place."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def ickd_distance(g_t: torch.Tensor, g_s: torch.Tensor) -> float:
    """ICKDLoss.batch_loss on classifier gradients [K, C] (viewed [K, C, 1]): per class k
    the C x C matrix g_k g_k^T, rows L2-normalised; sum of squared differences / (C * K)."""
    k, c = g_t.shape
    if g_s.shape != g_t.shape:
        raise ValueError(
            f"ICKD compares equal shapes, got {tuple(g_t.shape)} and {tuple(g_s.shape)}"
        )

    def corr(g: torch.Tensor) -> torch.Tensor:
        g = g.double().reshape(k, c, 1)
        return F.normalize(torch.bmm(g, g.transpose(1, 2)), dim=2)

    return float((corr(g_t) - corr(g_s)).pow(2).sum() / (c * k))


def projection(width_from: int, width_to: int) -> torch.Tensor:
    """The fixed [width_from, width_to] Gaussian map / sqrt(width_from) for unequal widths."""
    gen = torch.Generator().manual_seed(PROJECTION_SEED)
    return torch.randn(width_from, width_to, generator=gen, dtype=torch.float64) / width_from**0.5


@torch.no_grad()
def embedding_and_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """(pooled embedding [B, C], classifier-weight gradient of the mean CE [K, C]) of a
    network at random init, with batch statistics. Changes `model`'s BatchNorm buffers only."""
    taps = Taps(model, features=False, embeddings=True, layer=None, sample=x, role="model")
    try:
        batch_statistics(model)
        logits, _, emb = taps.run(x)
    finally:
        taps.remove()
    emb = emb.double()
    return emb, classifier_gradient(logits.double(), emb, y)


class OfficialDiswot:
    """The teacher's side, once per search: `teacher_at(seed)` built and Gaussian-initialised
    with torch's seed `seed`, on the batch (x, y)."""

    def __init__(self, teacher_at: Callable[[int], nn.Module], x: torch.Tensor,
                 y: torch.Tensor, seed: int) -> None:  # fmt: skip
        self.x, self.y, self.seed = x, y, seed
        torch.manual_seed(seed)
        teacher = gaussian_init(teacher_at(seed))
        self.e_t, self.g_t = embedding_and_gradient(teacher, x, y)

    def score(self, student_at: Callable[[int], nn.Module]) -> dict[str, float]:
        """{"diswot_official", "sp", "ickd"} of the candidate built by `student_at(seed)`
        and Gaussian-initialised (torch's seed `seed` again, then seed + 1 for the draw)."""
        student = student_at(self.seed)
        torch.manual_seed(self.seed + 1)
        e_s, g_s = embedding_and_gradient(gaussian_init(student), self.x, self.y)
        if g_s.shape[1] != self.g_t.shape[1]:
            g_s = g_s @ projection(g_s.shape[1], self.g_t.shape[1])
        sp = relation_distance(self.e_t, e_s)
        ickd = ickd_distance(self.g_t, g_s)
        score = -(sp + ickd)
        if not torch.isfinite(torch.tensor(score)):
            score = float("-inf")  # an overflow at N(0, 1) init ranks last
        return {"diswot_official": score, "sp": sp, "ickd": ickd}
