"""Augmentations applied to a training batch for distillation (`--kd-augment`).

**mixup**, as MIX-KD (Choi et al., "Understanding the Role of Mixup in Knowledge Distillation",
WACV 2023) uses it: hchoi71/MIX-KD at 6e8c149, `helper/loops_mixstd.py` (PMU L13-56, FMU
L60-100, the training step L125-157):
- two independent permutations of the batch, x1 = x[perm1], x2 = x[perm2];
- one mixing weight per sample, lambda ~ Beta(beta, beta) (`--beta_a`, default 1.0);
- `mixup` (partial mixup, PMU, the paper's default): int(B * unmixed) sample indices drawn
  *with replacement* get lambda = 1 (x1 unmixed). With the default 0.9 and B = 64 about
  e^-0.9 = 41% of the batch stays mixed, not 10% as the official help text says;
- `mixup-full` (FMU): every sample mixed;
- mixed = lambda * x1 + (1 - lambda) * x2, soft label lambda * onehot(y1) + (1 - lambda) *
  onehot(y2); the teacher sees the mixed images.

edgekd's choices, where the official code differs or is silent:
- the cross-entropy term uses the soft mixed label for every loss (the official `kd` branch
  pairs the mixed images with the unpermuted labels, L149, which mismatches them);
- losses defined on "the true class" (dkd, nkd, ofa, nd) use the soft label's top class;
- the draws come from a generator seeded by (seed, epoch, step, rank), so a resumed run mixes
  exactly as an uninterrupted one;
- label-free data mixes the images alone (there is no label to mix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MIXUPS = ("mixup", "mixup-full")
KD_AUGMENTS = ("none", *MIXUPS, "hard")  # hard: edgekd.distill.hard


@dataclass(frozen=True)
class Mixup:
    """`mode` is "mixup" (partial) or "mixup-full"; `beta` the Beta distribution's parameter;
    `unmixed` the fraction of the batch size drawn (with replacement) to stay unmixed."""

    mode: str = "mixup"
    beta: float = 1.0
    unmixed: float = 0.9

    def __post_init__(self) -> None:
        if self.mode not in MIXUPS:
            raise ValueError(f"mixup mode must be mixup or mixup-full, got {self.mode!r}")
        if self.beta <= 0:
            raise ValueError(f"the mixup beta must be > 0, got {self.beta}")
        if not 0 <= self.unmixed <= 1:
            raise ValueError(f"the unmixed fraction must lie in [0, 1], got {self.unmixed}")

    def weights(self, batch: int, g: torch.Generator) -> torch.Tensor:
        """lambda per sample, [B] (1 = unmixed)."""
        # torch's Beta sampler takes no generator: numpy's, seeded from this step's generator
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))
        lam = torch.from_numpy(rng.beta(self.beta, self.beta, batch)).float()
        if self.mode == "mixup":
            reset = torch.randint(0, batch, (int(batch * self.unmixed),), generator=g)
            lam[reset] = 1.0
        return lam

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None, classes: int,
                 g: torch.Generator):  # fmt: skip
        """(mixed images, soft labels [B, C] or None without labels)."""
        b = x.shape[0]
        p1 = torch.randperm(b, generator=g)
        p2 = torch.randperm(b, generator=g)
        lam = self.weights(b, g).to(x.device, x.dtype)
        shape = (b,) + (1,) * (x.dim() - 1)
        mixed = lam.view(shape) * x[p1.to(x.device)] + (1 - lam.view(shape)) * x[p2.to(x.device)]
        if y is None:
            return mixed, None
        y1 = F.one_hot(y[p1.to(y.device)], classes).float()
        y2 = F.one_hot(y[p2.to(y.device)], classes).float()
        lam = lam.float().unsqueeze(1)
        return mixed, lam * y1 + (1 - lam) * y2


def step_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    """The mixing draws of one step, the same after a resume."""
    return torch.Generator().manual_seed(((seed * 1009 + epoch) * 100003 + step) * 131 + rank)
