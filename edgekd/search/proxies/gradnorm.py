"""grad-norm (zero-cost proxies, Abdelfattah et al., ICLR 2021): the sum over weight tensors
of the L2 norm of the cross-entropy gradient on one labelled batch (train mode)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.outputs import first_output


def gradnorm_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    m = copy.deepcopy(model).train()
    for p in m.parameters():
        p.requires_grad_(True)
        p.grad = None
    out = m(x)
    out = first_output(out)
    F.cross_entropy(out, y).backward()
    return float(sum(p.grad.norm() for p in m.parameters() if p.grad is not None))
