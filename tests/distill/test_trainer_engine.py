"""The trainer's engine features: every loss trains through real timm nets (feature taps
included), the teacher cache, EMA, SGD + warm-up cosine, clipping, label-free data, resume."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.utils.data import Subset

from edgekd.data.bundle import DataBundle
from edgekd.distill import TrainConfig, distill
from edgekd.distill.losses import list_losses
from edgekd.distill.taps import Taps, tokens_to_map
from edgekd.errors import ConfigError, StageError
from edgekd.models import create_timm
from tests.distill.test_trainer import _student, _teacher


@pytest.fixture(scope="module")
def tiny(digits):
    """96 train / 64 val digits, training transform deterministic (no shift)."""
    from edgekd.data.digits import digits_bundle

    plain = digits_bundle(augment=False)
    return DataBundle(
        name="digits-tiny",
        train=Subset(plain.train, range(96)),
        val=Subset(plain.val, range(64)),
        calib_source=Subset(plain.calib_source, range(96)),
        num_classes=10,
        input_shape=(3, 32, 32),
        class_names=plain.class_names,
        fingerprint="tiny",
        augmented=False,
    )


BASE = TrainConfig(epochs=1, lr=5e-3, batch_size=32, seed=0)


@pytest.mark.parametrize("name", sorted(list_losses()))
def test_every_loss_trains_a_timm_student(name, tiny, tmp_path):
    res = distill(_student(), _teacher(), tiny, dataclasses.replace(BASE, loss=name), tmp_path)
    rec = res.history[0]
    assert 0 <= rec["val_acc"] <= 100
    assert all(torch.isfinite(torch.tensor(v)) for k, v in rec.items() if k.startswith("loss_"))
    if name in ("fitnet", "fa"):  # the last stage with >= 2x2 positions at 32x32
        assert res.layers == {"student": "blocks.3", "teacher": "layer3"}


def test_cached_teacher_gives_the_same_run_as_the_live_teacher(tiny, tmp_path):
    live = distill(
        _student(), _teacher(), tiny, dataclasses.replace(BASE, teacher_cache="off"), tmp_path / "a"
    )
    cached = distill(_student(), _teacher(), tiny, BASE, tmp_path / "b")
    assert (live.teacher_cache, cached.teacher_cache) == ("live", "memory")
    a = torch.load(live.last_path, weights_only=True)["model"]
    b = torch.load(cached.last_path, weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_disk_cache_is_written_and_reused(tiny, tmp_path):
    cfg = dataclasses.replace(BASE, teacher_cache="disk", loss="fa")
    res = distill(_student(), _teacher(), tiny, cfg, tmp_path, key="k")
    cache = torch.load(tmp_path / "teacher_cache.pt", weights_only=True)
    assert res.teacher_cache == "disk" and cache["key"] == "k"
    assert cache["cache"]["logits"].shape == (96, 10)
    assert cache["cache"]["feat"].shape == (96, 256, 2, 2)  # resnet10t layer3 at 32x32
    # with the same key the stored outputs are used: a teacher whose weights are now NaN
    # is never run on the training images, so training stays finite and repeats exactly
    broken = _teacher()
    with torch.no_grad():
        for p in broken.parameters():
            p.fill_(float("nan"))
    reused = distill(_student(), broken, tiny, cfg, tmp_path, key="k")
    assert reused.teacher_cache == "disk"
    assert reused.history[0]["loss_kd"] == pytest.approx(res.history[0]["loss_kd"])
    # in another directory the cache is built anew, so the NaN teacher is caught and named
    with pytest.raises(StageError, match="teacher's outputs are not finite"):
        distill(_student(), broken, tiny, cfg, tmp_path / "x", key="k")


def test_augmented_data_runs_the_teacher_live(small_digits, tmp_path):
    data = dataclasses.replace(small_digits, augmented=True)
    msgs: list[str] = []
    res = distill(
        _student(),
        _teacher(),
        data,
        dataclasses.replace(BASE, teacher_cache="memory"),
        tmp_path,
        on_message=msgs.append,
    )
    assert res.teacher_cache == "live" and "augmented" in msgs[0]


def test_ema_sgd_warmup_cosine_and_clipping(tiny, tmp_path):
    cfg = dataclasses.replace(
        BASE,
        epochs=2,
        optimizer="sgd",
        schedule="cosine",
        warmup_epochs=1.0,
        ema_decay=0.9,
        grad_clip=1.0,
    )
    student = _student()
    res = distill(student, _teacher(), tiny, cfg, tmp_path)
    last = torch.load(res.last_path, weights_only=True)
    assert last["ema"] is not None
    assert last["optimizer"]["param_groups"][0]["nesterov"] is True
    assert res.history[-1]["lr"] < 1e-4  # annealed to ~0 at the end
    # the best checkpoint holds the EMA weights, which differ from the raw weights
    best = torch.load(res.best_path, weights_only=True)
    assert best["ema"] is True
    if res.best_epoch == 2:
        k = "conv_stem.weight"
        assert not torch.equal(best["model"][k], last["model"][k])
        torch.testing.assert_close(best["model"][k], last["ema"][k])


def test_warmup_cosine_schedule_shape():
    from edgekd.distill.trainer import _scheduler

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    cfg = TrainConfig(epochs=4, lr=1.0, schedule="cosine", warmup_epochs=1.0)
    sched = _scheduler(opt, cfg, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1 / 11) and lrs[9] == pytest.approx(10 / 11)
    assert lrs[10] == pytest.approx(1.0)  # peak right after warm-up
    assert lrs[25] == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 30)))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))


class _Stop(Exception):
    pass


def _stop_after_first_epoch(record):
    if record["epoch"] == 1:
        raise _Stop


def test_resume_restores_adapters_and_ema(tiny, tmp_path):
    cfg = dataclasses.replace(BASE, epochs=2, loss="fitnet", ema_decay=0.9)
    ref = distill(_student(), _teacher(), tiny, cfg, tmp_path / "a", key="k")
    with pytest.raises(_Stop):  # interrupted after epoch 1
        distill(
            _student(),
            _teacher(),
            tiny,
            cfg,
            tmp_path / "b",
            key="k",
            on_epoch=_stop_after_first_epoch,
        )
    res = distill(_student(), _teacher(), tiny, cfg, tmp_path / "b", key="k", resume=True)
    assert res.resumed_from_epoch == 1
    a = torch.load(ref.last_path, weights_only=True)
    b = torch.load(res.last_path, weights_only=True)
    for part in ("model", "loss", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k])


def test_label_free_training_uses_teacher_outputs_only(tiny, tmp_path):
    unlabeled = dataclasses.replace(tiny, labeled=False)
    res = distill(_student(), _teacher(), unlabeled, BASE, tmp_path)
    assert "loss_ce" not in res.history[0] and "loss_kd" in res.history[0]
    with pytest.raises(ConfigError, match="needs labels"):
        distill(_student(), _teacher(), unlabeled, dataclasses.replace(BASE, loss="ce"), tmp_path)


def test_vit_tokens_become_maps_and_taps_name_bad_layers():
    tokens = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)  # 1 class token + 2x2
    fmap = tokens_to_map(tokens)
    assert fmap.shape == (2, 3, 2, 2)
    assert torch.equal(fmap[0, :, 0, 0], tokens[0, 1])  # the class token is dropped
    vit = create_timm("vit_tiny_patch16_224", 10, img_size=32, patch_size=8)
    x = torch.randn(2, 3, 32, 32)
    taps = Taps(vit, features=True, embeddings=True, layer=None, sample=x, role="teacher")
    _, feat, emb = taps.run(x)
    assert feat.shape == (2, 192, 4, 4) and emb.shape == (2, 192)
    with pytest.raises(ConfigError, match="no layer named 'nope'"):
        Taps(vit, features=True, embeddings=False, layer="nope", sample=x, role="teacher")
    scripted = torch.jit.script(create_timm("resnet10t", 10).eval())
    with pytest.raises(ConfigError, match="TorchScript"):
        Taps(scripted, features=True, embeddings=False, layer=None, sample=x, role="teacher")
