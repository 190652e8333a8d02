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

`--weight-average swad` (`Swad`): SWAD's loss-driven window (Cha et al. 2021) as the same code
runs it, `src/swad/swad_utils.py` L8-50 with `trainer.py` L280-297 and L313-316:
- the steps are cut into segments of `frequency` steps; each segment's parameters are averaged
  uniformly (a fresh AveragedModel at its first step, L280-284);
- at a segment's end the validation loss of the *current* model (cross-entropy on the labelled
  val set, BatchNorm in eval mode) is taken and the segment's average is queued (L286-289);
- the window opens when, of the last `n_converge` losses, the first is the lowest (L27-34):
  the queued segment before them starts the average, and the threshold is `tolerance_ratio`
  x their mean; from then on a queued segment joins the average once `n_tolerance` - 1 newer
  ones wait behind it, and the window closes when all of the last `n_tolerance` losses exceed
  the threshold (L37-44), dropping the segments still queued;
- at the end of the phase (L313-316) the segments still queued join if the window never
  closed. The average is of segment averages, each counted once (`swa_utils.py` L14-27).
Defaults as the official configs (`src/configs/*/swad/*.yaml`): n_converge 3, n_tolerance 6,
tolerance_ratio 1.3; `frequency` is 100 steps of 50,000 there, which a run of a few hundred
steps never reaches, so edgekd's default is a fifth of an epoch (its choice). Each epoch
validates the window's average so far; the phase ends by validating the closed (or finished)
window's average and keeping it as the best checkpoint, as the official code ships SWAD's
model unconditionally. If the window never opens, the phase keeps its usual best checkpoint
and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from typing import Literal

import torch
from torch import nn


@contextmanager
def swapped(model: nn.Module, put: Callable[[], None]):
    """Context: `put()` changes the model's weights inside; its own state dict again after
    (the EMA's and the weight average's validation)."""
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    put()
    try:
        yield
    finally:
        model.load_state_dict(own)


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
        if self.state is None:
            return nullcontext()

        def put() -> None:
            params = dict(model.named_parameters())
            with torch.no_grad():
                for n in self.names:
                    params[n].copy_(self.state[n])
            if self.bn == "recompute" and bn_data is not None and _norms(model):
                recompute_bn(model, bn_data)

        return swapped(model, put)

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


SWAD_DEFAULTS = {"n_converge": 3, "n_tolerance": 6, "tolerance_ratio": 1.3}


class Swad(WeightAverage):
    """SWAD's window over segment averages (see the module docstring). `val_loss(model)` is
    the current model's validation loss; `frequency` the segment length in steps."""

    def __init__(self, model: nn.Module, frequency: int, val_loss: Callable[[nn.Module], float],
                 bn: Literal["recompute", "frozen"] = "recompute", n_converge: int = 3,
                 n_tolerance: int = 6, tolerance_ratio: float = 1.3) -> None:  # fmt: skip
        super().__init__(model, 0, bn)
        if frequency < 1 or n_converge < 1 or n_tolerance < 1 or tolerance_ratio <= 0:
            raise ValueError("SWAD needs frequency, n_converge, n_tolerance >= 1 and a "
                             f"tolerance ratio > 0, got {frequency}, {n_converge}, "
                             f"{n_tolerance}, {tolerance_ratio}")  # fmt: skip
        self.frequency, self.val_loss_fn = frequency, val_loss
        self.n_converge, self.n_tolerance, self.ratio = n_converge, n_tolerance, tolerance_ratio
        self.segment: dict[str, torch.Tensor] | None = None  # this segment's running average
        self.seg_n = 0
        self.queue: list[dict[str, torch.Tensor]] = []  # segment averages not yet decided
        self.losses: list[float] = []
        self.begun = self.finished = False
        self.threshold: float | None = None
        self.opened_at = self.closed_at = None  # segment indices (0-based), for the report

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        if self.finished:
            return
        params = dict(model.named_parameters())
        if self.segment is None:
            self.segment = {n: params[n].detach().clone() for n in self.names}
            self.seg_n = 1
        else:
            self.seg_n += 1
            for n in self.names:
                self.segment[n].add_(params[n].detach() - self.segment[n], alpha=1.0 / self.seg_n)
        if (step + 1) % self.frequency:
            return
        was = model.training
        model.eval()
        try:
            loss = float(self.val_loss_fn(model))
        finally:
            if was:
                self.train_mode(model)
        self._segment_done(loss, self.segment)
        self.segment, self.seg_n = None, 0

    def _join(self, seg: dict[str, torch.Tensor]) -> None:
        if self.state is None:
            self.state, self.n = {k: v.clone() for k, v in seg.items()}, 1
            return
        self.n += 1
        for k in self.names:
            self.state[k].add_(seg[k] - self.state[k], alpha=1.0 / self.n)

    def _segment_done(self, loss: float, seg: dict[str, torch.Tensor]) -> None:
        self.losses.append(loss)
        self.queue.append(seg)
        i = len(self.losses)  # segments seen
        if not self.begun:
            if len(self.queue) <= self.n_converge:
                return
            recent = self.losses[-self.n_converge:]
            first = self.queue.pop(0)
            if min(recent) == recent[0]:
                self._join(first)
                self.begun, self.opened_at = True, i - self.n_converge - 1
                self.threshold = sum(recent) / len(recent) * self.ratio
            return
        if len(self.queue) < self.n_tolerance - 1:
            return
        self._join(self.queue.pop(0))
        if min(self.losses[-self.n_tolerance:]) > self.threshold:
            self.finished, self.closed_at = True, i - self.n_tolerance
            self.queue.clear()

    def finish(self) -> None:
        """The end of the phase: the queued segments join an open window."""
        if self.begun and not self.finished:
            while self.queue:
                self._join(self.queue.pop(0))
            self.closed_at = len(self.losses) - 1

    def facts(self) -> dict:
        return {"window": "swad", "frequency": self.frequency, "segments": len(self.losses),
                "opened_at_segment": self.opened_at, "closed_at_segment": self.closed_at,
                "segments_averaged": self.n if self.begun else 0,
                "threshold": self.threshold, "val_losses": self.losses}  # fmt: skip

    def state_dict(self) -> dict:
        return {**super().state_dict(), "segment": self.segment, "seg_n": self.seg_n,
                "queue": self.queue, "losses": self.losses, "begun": self.begun,
                "finished": self.finished, "threshold": self.threshold,
                "opened_at": self.opened_at, "closed_at": self.closed_at}  # fmt: skip

    def load_state_dict(self, d: dict, device: torch.device) -> None:
        super().load_state_dict(d, device)

        def to(t):
            return None if t is None else {k: v.to(device) for k, v in t.items()}

        self.segment, self.seg_n = to(d["segment"]), int(d["seg_n"])
        self.queue = [to(q) for q in d["queue"]]
        self.losses = [float(v) for v in d["losses"]]
        self.begun, self.finished = bool(d["begun"]), bool(d["finished"])
        self.threshold = d["threshold"]
        self.opened_at, self.closed_at = d["opened_at"], d["closed_at"]
