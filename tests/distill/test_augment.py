"""--kd-augment mixup (MIX-KD's partial and full mixup, hchoi71/MIX-KD helper/loops_mixstd.py):
the mixing rule on hand-built batches, the teacher run live on what the student sees, soft
labels in the cross-entropy, and a resumed run that mixes as an uninterrupted one."""

from __future__ import annotations

import math

import pytest
import torch

from edgekd.distill import TrainConfig, distill
from edgekd.distill.augment import Mixup, step_generator
from edgekd.distill.losses import KDBatch, create_loss
from tests.distill._runs import crash_after_first_epoch
from tests.distill.ddp_step_worker import toy_data, toy_net


def test_partial_mixup_resets_int_0_9_b_draws_with_replacement():
    # 57 = int(64 * 0.9) indices drawn with replacement stay unmixed: the chance that a given
    # sample escapes all of them is (63/64)^57 = 0.408, so ~41% of the batch is mixed
    fractions = [float((Mixup().weights(64, step_generator(0, 0, s, 0)) < 1).float().mean())
                 for s in range(3000)]  # fmt: skip
    assert sum(fractions) / len(fractions) == pytest.approx((63 / 64) ** 57, abs=0.01)
    full = Mixup("mixup-full").weights(64, step_generator(0, 0, 0, 0))
    assert bool((full < 1).all()) and bool((full > 0).all())  # Beta(1, 1) never hits 0 or 1
    # no reset draws: partial mixup is full mixup
    none_kept = Mixup(unmixed=0.0).weights(64, step_generator(0, 0, 0, 0))
    assert torch.equal(none_kept, full)


def test_mixed_images_and_soft_labels_follow_one_weight_per_sample():
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 2, 2, 2).clone()  # image i is all i
    y = torch.tensor([0, 1, 2, 0])
    g = step_generator(3, 1, 2, 0)
    mixed, soft = Mixup("mixup-full")(x, y, 3, g)
    # the same draws again, by the definition: perm1, perm2, then lambda
    g = step_generator(3, 1, 2, 0)
    p1, p2 = torch.randperm(4, generator=g), torch.randperm(4, generator=g)
    lam = Mixup("mixup-full").weights(4, g)
    for i in range(4):
        want = lam[i] * p1[i] + (1 - lam[i]) * p2[i]  # image index k has value k
        assert torch.allclose(mixed[i], torch.full((2, 2, 2), float(want)))
        label = torch.zeros(3)
        label[y[p1[i]]] += lam[i]
        label[y[p2[i]]] += 1 - lam[i]
        assert torch.allclose(soft[i], label)
    assert Mixup()(x, None, 3, step_generator(0, 0, 0, 0))[1] is None  # label-free


def test_cross_entropy_takes_the_soft_label():
    s = torch.tensor([[1.0, 2.0, 0.5]])
    soft = torch.tensor([[0.25, 0.75, 0.0]])
    batch = KDBatch(s, s.clone(), soft.argmax(1), target_soft=soft)
    # -(0.25 log p0 + 0.75 log p1) by hand: p = softmax([1, 2, 0.5])
    e = [math.exp(v) for v in (1.0, 2.0, 0.5)]
    want = -(0.25 * math.log(e[0] / sum(e)) + 0.75 * math.log(e[1] / sum(e)))
    got = create_loss("kd", alpha=0.0)(batch)["loss_ce"].item()
    assert got == pytest.approx(want, abs=1e-6)


def _toy_pair(tmp_path, cfg, **kw):
    """(student, TrainResult) of the toy conv nets on the toy data (tests.distill.ddp_step_worker):
    the resume property does not depend on the model's size."""
    student = toy_net(1)
    return student, distill(student, toy_net(0), toy_data(), cfg, tmp_path, key="k", **kw)


def test_mixup_runs_the_teacher_live_and_resumes_exactly(tmp_path):
    cfg = TrainConfig(epochs=2, lr=5e-3, batch_size=32, seed=0, kd_augment="mixup")
    said: list[str] = []
    full, ref = _toy_pair(tmp_path / "a", cfg, on_message=said.append)
    assert ref.teacher_cache == "live"  # the data is not augmented, yet no cache is used
    assert any("runs live on the mixed images" in m for m in said)

    with pytest.raises(KeyboardInterrupt):
        _toy_pair(tmp_path / "b", cfg, on_epoch=crash_after_first_epoch)
    resumed, res = _toy_pair(tmp_path / "b", cfg, resume=True)
    assert res.resumed_from_epoch == 1
    assert [r["val_acc"] for r in res.history] == [r["val_acc"] for r in ref.history]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_mixup_arguments_are_checked():
    for bad in (dict(mode="cutmix"), dict(beta=0.0), dict(unmixed=1.5)):
        with pytest.raises(ValueError):
            Mixup(**bad)
