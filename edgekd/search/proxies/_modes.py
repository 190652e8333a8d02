"""How a randomly initialised network runs for the proxies."""

from __future__ import annotations

from torch import nn


def batch_statistics(model: nn.Module) -> nn.Module:
    """Eval mode, except the normalisation layers with running statistics, which normalise
    with the batch's statistics (train mode): a network at random init has no running
    statistics worth the name, and dropout or drop-path would add noise to the score."""
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase):
            m.train()
    return model
