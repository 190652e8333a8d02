"""Every registered loss: finite, differentiable, label-free capable, zero at a match where its
definition says so, and its arguments checked with one clear error."""

from __future__ import annotations

import pytest
import torch

from edgekd.distill.losses import KDBatch, create_loss, list_losses, parse_loss_args
from edgekd.distill.losses._registry import loss_defaults
from edgekd.errors import ConfigError

NAMES = sorted(list_losses())


def _batch(same: bool = False, labels: bool = True) -> tuple[KDBatch, dict]:
    g = torch.Generator().manual_seed(0)
    logits_t = torch.randn(6, 5, generator=g) * 3
    feat_t = torch.randn(6, 4, 3, 3, generator=g)
    emb_t = torch.randn(6, 8, generator=g)
    if same:
        logits_s, feat_s, emb_s = logits_t.clone(), feat_t.clone(), emb_t.clone()
    else:
        logits_s = torch.randn(6, 5, generator=g)
        feat_s = torch.randn(6, 3, 6, 6, generator=g)
        emb_s = torch.randn(6, 7, generator=g)
    # student stages 1..4 as a small CNN's (stride 2 each), for the per-stage losses (ofa)
    stages_s = [torch.randn(6, 2 * 2**k, 16 // 2**k, 16 // 2**k, generator=g) for k in range(4)]
    # the teacher's: other widths and twice the resolution (losses resize)
    stages_t = [torch.randn(6, 3 * 2**k, 32 // 2**k, 32 // 2**k, generator=g) for k in range(4)]
    for t in (logits_s, feat_s, emb_s, *stages_s):
        t.requires_grad_(True)
    target = torch.tensor([0, 1, 2, 3, 4, 0]) if labels else None
    batch = KDBatch(logits_s, logits_t, target, feat_s, feat_t, emb_s, emb_t, progress=5.0,
                    stages_s=stages_s, stages_t=stages_t)  # fmt: skip
    shapes = {
        "feat_s": tuple(feat_s.shape[1:]),
        "feat_t": tuple(feat_t.shape[1:]),
        "emb_s": tuple(emb_s.shape[1:]),
        "emb_t": tuple(emb_t.shape[1:]),
        "stages_s": tuple(tuple(f.shape[1:]) for f in stages_s),
        "stages_t": tuple(tuple(f.shape[1:]) for f in stages_t),
        "dim_s": (16,),
        "dim_t": (8,),
        "classes": (5,),
    }
    return batch, shapes


def _make(name: str, shapes: dict, **kwargs):
    loss = create_loss(name, **kwargs)
    loss.setup(shapes)
    if hasattr(loss, "set_class_means"):
        loss.set_class_means(torch.randn(5, shapes["emb_t"][0]))
    if hasattr(loss, "set_teacher_confidence"):
        loss.set_teacher_confidence(0.8)
    if hasattr(loss, "set_teacher_feature_range"):
        loss.set_teacher_feature_range(-3.0, 3.0)
    return loss


def test_registry_holds_the_methods_of_the_issue():
    expected = {"kd", "dkd", "ttm", "wttm", "nkd", "luminet", "nd", "akl", "fitnet", "fa", "ce"}
    assert expected <= set(NAMES)
    assert all(list_losses()[n] for n in NAMES)  # one-line description each


@pytest.mark.parametrize("name", NAMES)
def test_finite_named_and_differentiable(name):
    batch, shapes = _batch()
    loss = _make(name, shapes)
    terms = loss(batch)
    assert terms and all(k.startswith("loss_") for k in terms)
    total = sum(terms.values())
    assert torch.isfinite(total)
    total.backward()
    assert batch.logits_s.grad is not None and batch.logits_s.grad.abs().sum() > 0
    if "features" in create_loss(name).needs:
        assert batch.feat_s.grad.abs().sum() > 0
    if "embeddings" in create_loss(name).needs:
        assert batch.emb_s.grad.abs().sum() > 0
    if "stages" in create_loss(name).needs:
        assert all(batch.stages_s[k - 1].grad.abs().sum() > 0 for k in loss.stages)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "ce"])
def test_label_free_drops_ce_and_stays_finite(name):
    batch, shapes = _batch(labels=False)
    terms = _make(name, shapes)(batch)
    assert "loss_ce" not in terms
    assert torch.isfinite(sum(terms.values()))


def test_ce_refuses_label_free_batches():
    batch, shapes = _batch(labels=False)
    with pytest.raises(ValueError, match="needs labels"):
        _make("ce", shapes)(batch)


@pytest.mark.parametrize("name", [n for n in NAMES if create_loss(n).zero_at_match])
def test_zero_when_student_equals_teacher(name):
    batch, shapes = _batch(same=True)
    terms = _make(name, shapes)(batch)
    distill = sum(v for k, v in terms.items() if k != "loss_ce")
    assert abs(float(distill)) < 1e-5, terms


@pytest.mark.parametrize("name", ["ttm", "nkd"])
def test_minimal_at_the_definitions_optimum(name):
    # TTM is minimal when softmax(s) = softmax(gamma*t); NKD's non-target term when the
    # student's non-target distribution equals the teacher's: a perturbation only raises it
    batch, shapes = _batch()
    loss = _make(name, shapes, ce=0.0)
    if name == "ttm":
        batch.logits_s = (loss.gamma * batch.logits_t).clone()
    else:
        batch.logits_s = batch.logits_t.clone()
    base = sum(v for k, v in loss(batch).items() if k != "loss_nkd_target").item()
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        batch.logits_s = batch.logits_s + 0.1 * torch.randn(6, 5, generator=g)
        terms = loss(batch)
        assert sum(v for k, v in terms.items() if k != "loss_nkd_target").item() >= base - 1e-6


def test_kd_args_are_typed_and_checked():
    assert parse_loss_args("dkd", "beta=2,temperature=3") == {"beta": 2.0, "temperature": 3.0}
    assert parse_loss_args("fa", "fast=true,k=8") == {"fast": True, "k": 8}
    with pytest.raises(ConfigError, match="has no argument 'betta'"):
        parse_loss_args("dkd", "betta=2")
    with pytest.raises(ConfigError, match="bad value for beta"):
        parse_loss_args("dkd", "beta=high")
    with pytest.raises(ConfigError, match="key=value"):
        parse_loss_args("dkd", "beta")
    with pytest.raises(ConfigError, match="bad arguments"):
        create_loss("akl", mu=2.0)
    assert set(loss_defaults("kd")) == {"temperature", "alpha"}
