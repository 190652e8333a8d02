"""Feature taps: finding the layer must not change the model."""

from __future__ import annotations

import torch
from torch import nn

from edgekd.distill.taps import default_feature_layer


def test_feature_probe_does_not_move_batchnorm_statistics():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10),
    )  # fmt: skip
    default_feature_layer(net, torch.randn(4, 3, 8, 8) * 5 + 3)
    assert net.training
    assert torch.equal(net[1].running_mean, torch.zeros(4))
    assert int(net[1].num_batches_tracked) == 0
