"""SynFlow, Tanaka et al. (NeurIPS 2020), as a zero-cost NAS proxy (Abdelfattah et al., ICLR
2021): parameters replaced by their absolute values, an all-ones input (float64), R = sum of
the output; score = sum over parameters of theta * dR/dtheta. Batch norm runs in eval mode
(its affine terms count like weights); the model is not modified (a copy is scored).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgekd.outputs import first_output


def synflow_score(model: nn.Module, input_shape) -> float:
    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in m.parameters():
            p.abs_()
    for p in m.parameters():
        p.requires_grad_(True)
        p.grad = None
    out = m(torch.ones(1, *input_shape, dtype=torch.float64))
    out = first_output(out)
    out.sum().backward()
    return float(sum((p.detach() * p.grad).sum() for p in m.parameters() if p.grad is not None))
