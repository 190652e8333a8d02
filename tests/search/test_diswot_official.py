"""DisWOT's official form (lliai/DisWOT-CVPR2023 `compute_diswot_procedure`): golden values
derived by hand from ICKDLoss.batch_loss and Similarity, and the gradient checked against
autograd as the script reads it (`classifier.weight.grad`)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgekd.search.proxies.diswot_official import (
    OfficialDiswot,
    embedding_and_gradient,
    gaussian_init,
    ickd_distance,
    projection,
)


def test_ickd_worked_examples():
    # g = [1, 2]: g g^T = [[1, 2], [2, 4]], both rows normalise to [1, 2]/sqrt5.
    # g = [1, -1]: rows [1, -1]/sqrt2 and [-1, 1]/sqrt2.
    # row 0 of the difference: (1/sqrt5 - 1/sqrt2)^2 + (2/sqrt5 + 1/sqrt2)^2 = 2 + 2/sqrt10,
    # row 1: (1/sqrt5 + 1/sqrt2)^2 + (2/sqrt5 - 1/sqrt2)^2 = 2 - 2/sqrt10; sum 4, / (C*K = 2)
    assert ickd_distance(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, -1.0]])) == pytest.approx(
        2.0
    )
    # g_s = [2, 1]: both its rows are [2, 1]/sqrt5; each row difference is [-1, 1]/sqrt5,
    # squared 2/5; sum 4/5, / 2 = 0.4
    assert ickd_distance(torch.tensor([[1.0, 2.0]]), torch.tensor([[2.0, 1.0]])) == pytest.approx(
        0.4
    )
    # two classes: the sum over both / (C * K = 4) is the mean of the two per-class values
    g_t = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    g_s = torch.tensor([[1.0, -1.0], [2.0, 1.0]])
    assert ickd_distance(g_t, g_s) == pytest.approx((2.0 + 0.4) / 2)


def test_ickd_is_two_minus_sign_agreement_times_cosine():
    # each normalised row i of g g^T is sign(g_i) g/|g|, so a class contributes
    # 2 - 2 * mean_i(sign(t_i) sign(s_i)) * cos(t, s)
    gen = torch.Generator().manual_seed(3)
    t, s = torch.randn(1, 7, generator=gen), torch.randn(1, 7, generator=gen)
    agree = float((t.sign() * s.sign()).mean())
    cos = float(torch.nn.functional.cosine_similarity(t, s))
    assert ickd_distance(t, s) == pytest.approx(2 - 2 * agree * cos)
    assert ickd_distance(t, t) == pytest.approx(0.0, abs=1e-12)


def test_ickd_refuses_unequal_widths():
    with pytest.raises(ValueError, match="equal shapes"):
        ickd_distance(torch.ones(3, 4), torch.ones(3, 5))


def test_gaussian_init_is_the_scripts():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.Flatten(), nn.Linear(10, 400))
    gaussian_init(m)
    conv, bn, _, fc = m
    assert bool((conv.bias == 0).all()) and bool((fc.bias == 0).all())
    assert bool((bn.weight == 1).all()) and bool((bn.bias == 0).all())
    # N(0, 1), not timm's fan-in scaled init: 1,728 and 4,000 draws
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.06)
    assert fc.weight.std().item() == pytest.approx(1.0, abs=0.06)


def _tiny(width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 3))  # fmt: skip


def test_gradient_is_what_autograd_leaves_on_the_classifier():
    torch.manual_seed(1)
    model = gaussian_init(_tiny(4))
    x, y = torch.randn(6, 1, 5, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    emb, g = embedding_and_gradient(model, x, y)
    # the script: train-mode forward, CE backward, classifier.weight.grad
    model.train()
    logits = model(x)
    nn.functional.cross_entropy(logits, y).backward()
    assert torch.allclose(g.float(), model[-1].weight.grad, atol=1e-5)
    pooled = model[:-1](x)
    assert torch.allclose(emb.float(), pooled, atol=1e-5)


def test_score_is_minus_sp_plus_ickd_and_projects_unequal_widths():
    x, y = torch.randn(8, 1, 5, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])

    def at(width):
        def build(seed):
            torch.manual_seed(seed)
            return _tiny(width)

        return build

    ref = OfficialDiswot(at(4), x, y, seed=0)
    same = ref.score(at(4))
    assert same["diswot_official"] == pytest.approx(-(same["sp"] + same["ickd"]))
    assert 0 <= same["ickd"] <= 4 and math.isfinite(same["sp"])
    wider = ref.score(at(6))  # [3, 6] gradient mapped to the teacher's 4 channels
    assert math.isfinite(wider["diswot_official"])
    assert projection(6, 4).shape == (6, 4)
    assert torch.equal(projection(6, 4), projection(6, 4))  # fixed: one map per width pair
