"""--kd-augment hard (HARD, arXiv 2305.14890, as edgekd.distill.hard builds it): the augmentor
starts at the identity and stays within its bounds, only the chosen images change and only
where the teacher is still right, the augmentor alone learns, and a resumed run augments as
an uninterrupted one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekd.distill import TrainConfig, distill
from edgekd.distill.augment import KD_AUGMENTS, step_generator
from edgekd.distill.hard import AffineAugmentor, HardAugment, bn_statistics_kept
from tests.distill._runs import crash_after_first_epoch
from tests.distill.ddp_step_worker import toy_data, toy_net


def test_the_augmentor_starts_at_the_identity():
    torch.manual_seed(0)
    aug = AffineAugmentor(3)
    x = torch.randn(4, 3, 8, 8)
    z = torch.randn(4, 16)
    assert torch.equal(aug.theta(x, z), torch.eye(2, 3).expand(4, 2, 3))
    torch.testing.assert_close(aug(x, z), x, atol=1e-5, rtol=0)


def test_the_warp_is_bounded_by_its_limits():
    aug = AffineAugmentor(1, max_linear=0.1, max_shift=0.3)
    with torch.no_grad():
        for p in aug.head.parameters():
            p.fill_(50.0)  # saturate tanh
    theta = aug.theta(torch.rand(2, 1, 8, 8), torch.ones(2, 16))
    off = (theta - torch.eye(2, 3)).abs()
    assert torch.all(off[:, :, :2] <= 0.1 + 1e-6) and torch.all(off[:, :, 2] <= 0.3 + 1e-6)
    assert torch.all(off > 0.09)  # saturated: at the limit, not inside it


class _Says(nn.Module):
    """A teacher that predicts `cls` whatever the image: right exactly on the images of that
    class, whatever the augmentor does."""

    def __init__(self, cls: int) -> None:
        super().__init__()
        self.cls = cls
        self.scale = nn.Parameter(torch.ones(()), requires_grad=False)

    def forward(self, x):
        out = torch.zeros(x.shape[0], 10) + x.mean() * 0 * self.scale
        out[:, self.cls] = 5.0
        return out


def _student() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))  # fmt: skip


def test_one_step_changes_only_the_chosen_images_the_teacher_is_right_on():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8), torch.tensor([0, 1] * 8)
    student, teacher = _student(), _Says(0)
    own = {k: v.clone() for k, v in student.state_dict().items()}
    hard = HardAugment(3, "cpu", fraction=0.5)
    net0 = {k: v.clone() for k, v in hard.net.state_dict().items()}
    out, done = hard(x, y, teacher, student, step_generator(0, 0, 0, 0))
    assert done.augmented == 8
    pick = torch.randperm(16, generator=step_generator(0, 0, 0, 0))[:8]
    assert done.kept == int((y[pick] == 0).sum())  # the teacher is right on class 0 only
    changed = {i for i in range(16) if not torch.equal(out[i], x[i])}
    kept = {int(i) for i in pick if y[i] == 0}
    assert changed <= kept  # nothing outside the chosen, right-for-the-teacher images moved
    # student: weights, BatchNorm statistics and gradients untouched; augmentor: one step
    for k, v in student.state_dict().items():
        assert torch.equal(v, own[k]), k
    assert all(p.grad is None for p in student.parameters())
    assert any(not torch.equal(v, net0[k]) for k, v in hard.net.state_dict().items())
    assert done.disagreement >= 0 and done.consistency == pytest.approx(0.0, abs=1e-6)
    # after the step the augmentor warps: a second step moves the kept images
    out2, done2 = hard(x, y, teacher, student, step_generator(0, 0, 1, 0))
    pick2 = torch.randperm(16, generator=step_generator(0, 0, 1, 0))[:8]
    moved = [i for i in pick2 if y[i] == 0 and not torch.equal(out2[i], x[i])]
    assert len(moved) == done2.kept > 0


def test_label_free_keeps_where_the_teacher_keeps_its_own_top1():
    x = torch.randn(8, 3, 8, 8)
    out, done = HardAugment(3, "cpu", fraction=1.0)(x, None, _Says(3), _student(),
                                                    step_generator(1, 0, 0, 0))  # fmt: skip
    assert done.augmented == done.kept == 8  # a constant teacher never changes its mind


def test_bn_statistics_are_restored():
    m = nn.BatchNorm2d(2)
    before = m.running_mean.clone()
    with bn_statistics_kept(m):
        m.train()(torch.randn(4, 2, 3, 3) + 5)
        assert not torch.equal(m.running_mean, before)
    assert torch.equal(m.running_mean, before)


def test_hard_fraction_is_checked_and_listed():
    assert "hard" in KD_AUGMENTS
    with pytest.raises(ValueError, match="fraction"):
        HardAugment(3, "cpu", fraction=0.0)


def test_config_lists_the_trainers_augments():
    import typing

    from edgekd.config import CompressConfig

    assert typing.get_args(CompressConfig.model_fields["kd_augment"].annotation) == KD_AUGMENTS


def _run(tmp_path, **kw):
    student = toy_net(1)
    cfg = TrainConfig(epochs=2, lr=1e-2, batch_size=32, seed=0, kd_augment="hard")
    return student, distill(student, toy_net(0), toy_data(), cfg, tmp_path, key="k", **kw)


def test_hard_runs_live_records_its_share_and_resumes_exactly(tmp_path):
    said: list[str] = []
    full, ref = _run(tmp_path / "a", on_message=said.append)
    assert ref.teacher_cache == "live"
    assert any("runs live on the hard-augmented images" in m for m in said)
    assert all(0.0 <= r["hard_kept"] <= 1.0 and r["hard_disagreement"] >= 0 for r in ref.history)
    last = torch.load(ref.last_path, weights_only=True)
    assert set(last["hard"]) == {"net", "opt"}

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", on_epoch=crash_after_first_epoch)
    resumed, res = _run(tmp_path / "b", resume=True)
    assert res.resumed_from_epoch == 1
    assert [r["hard_kept"] for r in res.history] == [r["hard_kept"] for r in ref.history]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_an_onnx_teacher_is_refused_in_one_line(tmp_path):
    # the augmentor learns through the teacher's input gradient; ONNX Runtime has none
    from edgekd.errors import ConfigError
    from edgekd.models import load_teacher

    path = tmp_path / "t.onnx"
    torch.onnx.export(toy_net(0).eval(), (torch.zeros(2, 3, 8, 8),), str(path),
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, dynamo=False)  # fmt: skip
    teacher = load_teacher(str(path)).module
    cfg = TrainConfig(epochs=1, lr=1e-2, batch_size=32, kd_augment="hard")
    with pytest.raises(ConfigError, match="ONNX teacher") as e:
        distill(toy_net(1), teacher, toy_data(), cfg, tmp_path / "run")
    assert "mixup" in str(e.value.fix)
