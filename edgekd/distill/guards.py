"""Numerical guards: name the first layer that produces NaN or inf."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def first_nonfinite_module(model: nn.Module, x: torch.Tensor) -> str | None:
    """Run `model` on `x` and return the name of the first leaf module (in execution order)
    whose output holds NaN or inf, or None when every output is finite."""
    found: list[str] = []
    hooks = []

    def hook(name):
        def fn(_module, _inputs, output):
            if found:
                return
            outs = output if isinstance(output, (tuple, list)) else (output,)
            if any(isinstance(o, torch.Tensor) and not torch.isfinite(o).all() for o in outs):
                found.append(name)

        return fn

    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return found[0] if found else None
