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


def test_describe_names_the_layer_the_token_reshape_and_the_embedding():
    import timm

    from edgekd.distill.taps import Taps

    # deit_tiny at 32x32 with 8x8 patches: 16 patch tokens + the class token, width 192
    vit = timm.create_model("deit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=8)
    x = torch.zeros(2, 3, 32, 32)
    taps = Taps(vit.eval(), features=True, embeddings=True, layer=None, sample=x, role="teacher")
    _, feat, emb = taps.run(x)
    assert taps.describe(feat, emb) == (
        "blocks.11 -> tokens 17x192 -> map 192x4x4 (1 prefix token(s) dropped); "
        "embedding 192 (the classifier's input)"
    )


def test_describe_module_counts_the_adapters_parameters():
    from edgekd.distill.taps import describe_module

    adapter = torch.nn.Sequential(torch.nn.Conv2d(128, 256, 1, bias=False),
                                  torch.nn.BatchNorm2d(256))  # fmt: skip
    # 128 x 256 weights + 256 BatchNorm weights + 256 biases
    assert describe_module(adapter) == "Conv2d 128->256 1x1 + BatchNorm2d (33,280 params)"
    assert describe_module(torch.nn.Linear(4, 3)) == "Linear 4->3 (15 params)"
