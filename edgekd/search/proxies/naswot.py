"""NASWOT, Mellor et al., "Neural Architecture Search without Training" (ICML 2021).

For a batch of N inputs, each input's binary code c_i is whether every rectifier-like unit
is active (its output > 0; ReLU, ReLU6, LeakyReLU, GELU, SiLU, Hardswish modules). With N_A
units, K[i, j] = N_A - Hamming(c_i, c_j); the score is log|det K|. A randomly initialised
network has only its initial running statistics, so it runs with batch statistics
(train-mode BatchNorm; dropout stays off), on a copy: the caller's model is untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgekd.search.proxies._modes import batch_statistics

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Hardswish)


@torch.no_grad()
def naswot_score(model: nn.Module, x: torch.Tensor) -> float:
    codes: list[torch.Tensor] = []
    model = batch_statistics(copy.deepcopy(model))
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, out: codes.append((out.detach() > 0).flatten(1).float())
        )
        for m in model.modules()
        if isinstance(m, ACTIVATIONS)
    ]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    if not codes:
        return float("-inf")
    c = torch.cat(codes, dim=1).double()
    # N_A - Hamming = agreements = c c^T + (1 - c)(1 - c)^T
    k = c @ c.T + (1 - c) @ (1 - c).T
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if sign > 0 else float("-inf")
