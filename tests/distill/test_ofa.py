"""OFA-KD: the student's stages found and hooked, the projector heads built as the official code
builds them (Hao840/OFAKD distillers/ofa.py L38-95), and a training run that taps only the
student (so a cached or ONNX teacher serves); faqd, which taps both models' stages."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekd.distill import TrainConfig, distill
from edgekd.distill.losses import create_loss
from edgekd.distill.losses.ofa import PatchMerge, ViTHead, cnn_head, parse_stages
from edgekd.distill.taps import Taps, stage_layers
from edgekd.models import create_timm


def _sep_convs(head: nn.Module) -> int:
    return sum(1 for m in head.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2))


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_cnn_head_halves_the_map_4_minus_k_times_to_the_wider_width(stage):
    c, hw = 8 * 2**stage, 64 // 2**stage  # a ResNet-like stage k of a 64x64 input
    head = cnn_head(stage, c, width=96, classes=7)
    assert _sep_convs(head) == 4 - stage
    pointwise = [(m.in_channels, m.out_channels) for m in head.modules()
                 if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]  # fmt: skip
    # each SepConv: 1x1 c -> c, then 1x1 c -> 2c (the last block: c -> the width); stage 4: 1x1
    want, ch = [], c
    for i in range(4 - stage):
        want += [(ch, ch), (ch, 96 if i == 3 - stage else ch * 2)]
        ch *= 2
    assert pointwise == (want or [(c, 96)])
    assert head[-1].in_features == 96
    assert head(torch.randn(2, c, hw, hw)).shape == (2, 7)


def test_vit_head_merges_to_a_7x7_grid_and_keeps_the_class_token():
    # 14x14 patches + 1 class token: one merge (14 -> 7, log2(14/7) = 1), then 4 - 1 blocks
    head = ViTHead(1, 1 + 196, dim=32, width=48, classes=5, prefix=1)
    assert [type(m) for m in head.merge] == [PatchMerge] and len(head.blocks) == 3
    assert isinstance(head.merge[0].act, nn.GELU)  # the official first merge has GELU
    assert head(torch.randn(2, 197, 32)).shape == (2, 5)
    # a 2x2 grid (a ViT at 32x32 with 16x16 patches) has nothing to merge; stage 4: one block
    small = ViTHead(4, 1 + 4, dim=32, width=32, classes=5, prefix=1)
    assert len(small.merge) == 0 and len(small.blocks) == 1
    assert small(torch.randn(2, 5, 32)).shape == (2, 5)


def test_patch_merge_concatenates_each_2x2_neighbourhood_in_the_official_order():
    pm = PatchMerge(2, dim=1, out=4, act=False)
    with torch.no_grad():
        pm.reduction.weight.copy_(torch.eye(4))
    pm.norm = nn.Identity()  # look at the concatenation itself
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 4, 1)  # row-major 2x2 grid
    # official order x0 = (0,0), x1 = (1,0), x2 = (0,1), x3 = (1,1) as (row, col)
    assert pm(x).flatten().tolist() == [0.0, 2.0, 1.0, 3.0]


def test_stages_are_timms_reduction_4_to_32_or_the_official_vit_blocks():
    assert stage_layers(create_timm("resnet10t", 10)) == ["layer1", "layer2", "layer3", "layer4"]
    deit = create_timm("deit_tiny_patch16_224", 10, img_size=32)
    assert stage_layers(deit) == ["blocks.1", "blocks.3", "blocks.9", "blocks.11"]
    mnv3 = create_timm("mobilenetv3_small_050", 10)
    names = stage_layers(mnv3)
    taps = Taps(mnv3, features=False, embeddings=False, layer=None, sample=None,
                role="student", stages=True)  # fmt: skip
    mnv3.eval()
    taps.run(torch.randn(1, 3, 64, 64))
    sizes = [f.shape[-1] for f in taps.stages()]
    assert len(names) == 4 and sizes == [16, 8, 4, 2]  # reductions 4, 8, 16, 32


def test_stage_arguments_are_checked():
    assert parse_stages("1+2+3+4") == (1, 2, 3, 4) and parse_stages("3 4") == (3, 4)
    for bad in ("0+1", "five", ""):
        with pytest.raises(ValueError, match="stages must be"):
            parse_stages(bad)
    loss = create_loss("ofa", stages="2+4")
    loss.setup({"stages_s": ((8, 8, 8), (16, 4, 4), (32, 2, 2), (64, 1, 1)), "dim_s": (64,),
                "classes": (3,)})  # fmt: skip
    assert len(loss.heads) == 2 and _sep_convs(loss.heads[0]) == 2
    with pytest.raises(ValueError, match="has 2 stage"):
        create_loss("ofa").setup({"stages_s": ((8, 4, 4), (8, 2, 2)), "dim_s": (8,),
                                  "classes": (3,)})  # fmt: skip


def test_training_taps_only_the_students_stages(tmp_path, small_digits):
    torch.manual_seed(0)
    student = create_timm("resnet10t", 10)
    teacher = create_timm("mobilenetv3_small_050", 10)
    said: list[str] = []
    cfg = TrainConfig(epochs=1, lr=5e-3, batch_size=64, seed=0, loss="ofa")
    res = distill(student, teacher, small_digits, cfg, tmp_path, key="k", on_message=said.append)
    assert {"loss_kd", "loss_ofa", "loss_ce"} <= set(res.history[0])
    assert res.teacher_cache == "memory"  # only the teacher's logits are needed: cacheable
    line = next(m for m in said if m.startswith("ofa taps"))
    assert "stages 1 layer1" in line and "4 layer4" in line, line
    ck = torch.load(res.last_path, weights_only=True)
    assert any(k.startswith("heads.3.") for k in ck["loss"])  # the heads resume with the run


def test_faqd_taps_both_models_stages_and_runs_the_teacher_live(tmp_path, small_digits):
    torch.manual_seed(0)
    student = create_timm("mobilenetv3_small_050", 10)
    teacher = create_timm("resnet10t", 10)
    said: list[str] = []
    cfg = TrainConfig(epochs=1, lr=5e-3, batch_size=64, seed=0, loss="faqd")
    res = distill(student, teacher, small_digits, cfg, tmp_path, key="k", on_message=said.append)
    assert res.teacher_cache == "live"
    assert any("compares the teacher's stage maps: the teacher runs live" in m for m in said)
    line = next(m for m in said if m.startswith("faqd taps"))
    assert "stages 1 blocks.0" in line and "teacher stages 1 layer1" in line, line
    assert {"loss_ce", "loss_kd", "loss_fa"} <= set(res.history[0])
