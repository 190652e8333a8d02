"""Weight averaging in distillation (`--weight-average START`), as WAKD (Berezovskiy & Morozov
2023, "Weight Averaging Improves Knowledge Distillation under Domain Shift") does it: official
code vorobeevich/distillation-in-dg at e32e109, `src/trainer/trainer.py` L247-318 (the
"our_swad" path) and `src/swad/swa_utils.py` L5-27 (AveragedModel):
- a uniform running average of the student's parameters, avg += (p - avg) / n, updated after
  every optimizer step from step `our_swad_begin` on (5,000 of 50,000 in the official configs,
  i.e. START = 0.1 of the phase's steps);
- the averaged model is the one evaluated at the end; here it is also what each epoch
  validates and what the best checkpoint holds, so it is what is quantized and exported.

BatchNorm (`bn`):
- "frozen", the official handling: every BatchNorm layer stays in eval mode for the whole
  phase (its running statistics never move, `swad_train_regime` L241-245), so the averaged
  weights keep the statistics they were trained with. This suits a student that starts
  trained (the QAT phase, a pretrained student), not one at random init.
- "recompute" (edgekd's default, SWA's usual rule): BatchNorm trains as usual, the average
  covers parameters only, and before each validation the averaged model's BatchNorm statistics
  are recomputed with one pass over the training images (cumulative average, train mode).
SWAD's loss-driven window (Cha et al. 2021, `src/swad/swad_utils.py`) is not offered.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


def _norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class WeightAverage:
    """Uniform average of `model`'s parameters from optimizer step `start` (0-based) on."""

    def __init__(self, model: nn.Module, start: int,
                 bn: Literal["recompute", "frozen"] = "recompute") -> None:  # fmt: skip
        if bn not in ("recompute", "frozen"):
            raise ValueError(f"bn must be recompute or frozen, got {bn!r}")
        self.start, self.bn = start, bn
        self.names = [n for n, p in model.named_parameters()]
        self.state: dict[str, torch.Tensor] | None = None
        self.n = 0

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """After optimizer step `step` (0-based, counted over the whole phase)."""
        if step < self.start:
            return
        params = dict(model.named_parameters())
        if self.state is None:
            self.state = {n: params[n].detach().clone() for n in self.names}
            self.n = 1
            return
        self.n += 1
        for n in self.names:
            self.state[n].add_(params[n].detach() - self.state[n], alpha=1.0 / self.n)

    def train_mode(self, model: nn.Module) -> None:
        """model.train(), with BatchNorm in eval mode under bn="frozen"."""
        model.train()
        if self.bn == "frozen":
            for m in _norms(model):
                m.eval()

    def swapped_in(self, model: nn.Module, bn_data=None):
        """Context: the model holds the averaged parameters (and, under bn="recompute", the
        BatchNorm statistics of those weights over `bn_data`, an iterable of input batches);
        its own parameters and buffers again after. No average yet: the model as it is."""
        avg = self

        class _Swap:
            def __enter__(self):
                if avg.state is None:
                    return
                self.own = {k: v.detach().clone() for k, v in model.state_dict().items()}
                params = dict(model.named_parameters())
                with torch.no_grad():
                    for n in avg.names:
                        params[n].copy_(avg.state[n])
                if avg.bn == "recompute" and bn_data is not None and _norms(model):
                    recompute_bn(model, bn_data)

            def __exit__(self, *exc):
                if avg.state is not None:
                    model.load_state_dict(self.own)

        return _Swap()

    def state_dict(self) -> dict:
        return {"state": self.state, "n": self.n, "start": self.start, "bn": self.bn}

    def load_state_dict(self, d: dict, device: torch.device) -> None:
        self.n = int(d["n"])
        self.state = None if d["state"] is None else {
            k: v.to(device) for k, v in d["state"].items()}  # fmt: skip


@torch.no_grad()
def recompute_bn(model: nn.Module, batches) -> None:
    """BatchNorm running statistics of `model`'s current weights: reset, then one pass over
    `batches` in train mode with a cumulative average (momentum None), as SWA's update_bn."""
    norms = _norms(model)
    momenta = {m: m.momentum for m in norms}
    was = model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        for x in batches:
            model(x)
    finally:
        for m in norms:
            m.momentum = momenta[m]
        model.train(was)
