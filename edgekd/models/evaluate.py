"""Running a trained model: the teacher pinned to eval mode, and top-1 accuracy on a dataset."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgekd.data import loader
from edgekd.outputs import first_output


class FrozenTeacher:
    """The teacher pinned to eval mode with gradients off; callers just call it."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        try:
            module.eval()
        except NotImplementedError:  # torch.export modules are already in inference form
            pass
        for p in module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        return first_output(out)



@torch.no_grad()
def evaluate_torch(
    model: nn.Module, ds, batch_size: int = 256, progress=None
) -> tuple[float, torch.Tensor]:
    """Top-1 accuracy (percent) and logits (on the CPU) of `model` on dataset `ds`, run on the
    device the model's parameters are on. `progress(done, total)`: called after each batch."""
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    logits, labels = [], []
    batches = loader(ds, batch_size)
    for i, (x, y) in enumerate(batches):
        out = model(x.to(device))
        logits.append(first_output(out).float().cpu())
        labels.append(torch.as_tensor(y))
        if progress is not None:
            progress(i + 1, len(batches))
    out = torch.cat(logits)
    acc = (out.argmax(1) == torch.cat(labels)).float().mean().item() * 100
    return acc, out


def chance_level(num_classes: int, n_val: int) -> float:
    """The val top-1 (percent) a guess does not beat at three standard errors: 1/classes plus
    3 sqrt(p(1-p)/n). digits (10 classes, 360 val images): 14.74%."""
    p = 1 / max(num_classes, 1)
    return 100 * (p + 3 * math.sqrt(p * (1 - p) / max(n_val, 1)))
