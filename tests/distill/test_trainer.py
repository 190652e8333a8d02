import math

import pytest
import torch

from edgekd.distill import TrainConfig, distill
from edgekd.errors import StageError
from edgekd.models import create_timm


def _student(seed=0):
    torch.manual_seed(seed)
    return create_timm("mobilenetv3_small_050", 10)


def _teacher():
    torch.manual_seed(1)
    return create_timm("resnet10t", 10)


CFG = TrainConfig(epochs=2, lr=5e-3, batch_size=64, seed=0)


def test_checkpoints_and_history(tmp_path, small_digits):
    res = distill(_student(), _teacher(), small_digits, CFG, tmp_path, key="k")
    assert res.last_path.exists() and res.best_path.exists()
    assert [r["epoch"] for r in res.history] == [1, 2]
    assert {"loss_kd", "loss_ce", "val_acc", "lr"} <= set(res.history[0])
    best = torch.load(res.best_path, weights_only=True)
    assert best["val_acc"] == max(r["val_acc"] for r in res.history) == res.best_val_acc


def test_resume_matches_uninterrupted_run(tmp_path, small_digits):
    full = _student()
    ref = distill(full, _teacher(), small_digits, CFG, tmp_path / "a", key="k")
    # "crash" after epoch 1: run one epoch with the same schedule length, then resume
    part = _student()
    cfg1 = TrainConfig(epochs=2, lr=5e-3, batch_size=64, seed=0)
    steps = math.ceil(len(small_digits.train) / 64)
    calls = []

    def crash_after_first_epoch(record):
        calls.append(record)
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        distill(
            part,
            _teacher(),
            small_digits,
            cfg1,
            tmp_path / "b",
            key="k",
            on_epoch=crash_after_first_epoch,
        )
    resumed = _student(seed=99)  # different init: everything must come from the checkpoint
    res = distill(resumed, _teacher(), small_digits, cfg1, tmp_path / "b", key="k", resume=True)
    assert res.resumed_from_epoch == 1 and steps > 0
    assert [r["val_acc"] for r in res.history] == [r["val_acc"] for r in ref.history]
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_resume_ignores_checkpoint_of_other_inputs(tmp_path, small_digits):
    distill(
        _student(), _teacher(), small_digits, TrainConfig(epochs=1, lr=5e-3), tmp_path, key="old"
    )
    res = distill(
        _student(),
        _teacher(),
        small_digits,
        TrainConfig(epochs=1, lr=5e-3),
        tmp_path,
        key="new",
        resume=True,
    )
    assert res.resumed_from_epoch == 0


def test_divergence_stops_with_named_term(tmp_path, small_digits):
    class NaNStudent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            return torch.full((x.shape[0], 10), float("nan")) * self.w

    with pytest.raises(StageError, match="loss_kd.*not finite|not finite"):
        distill(NaNStudent(), _teacher(), small_digits, CFG, tmp_path, key="k")


def test_cakld_measures_the_teachers_confidence_before_training(tmp_path, small_digits):
    # BitDistiller's beta: the teacher's top-1 probability averaged over the calibration images
    teacher = _teacher().eval()
    calib = small_digits.calib_source
    with torch.no_grad():
        xs = torch.stack([calib[i][0] for i in range(len(calib))])
        want = torch.softmax(teacher(xs), 1).max(1).values.mean().item()
    cfg = TrainConfig(epochs=1, lr=5e-3, batch_size=64, seed=0, loss="cakld")
    res = distill(_student(), teacher, small_digits, cfg, tmp_path, key="k")
    assert res.loss_facts["teacher_confidence"] == pytest.approx(want, abs=1e-5)
    last = torch.load(res.last_path, weights_only=True)
    assert last["loss"]["beta"].item() == pytest.approx(want, abs=1e-5)  # in the checkpoint
    assert "loss_cakld" in res.history[0] and "loss_ce" not in res.history[0]


def test_qfd_measures_the_teachers_feature_range_before_training(tmp_path, small_digits):
    # QFD's quantizer range: the teacher's embedding (the classifier's input) over calibration
    teacher = _teacher().eval()
    calib = small_digits.calib_source
    seen = []
    hook = teacher.get_classifier().register_forward_pre_hook(lambda _m, i: seen.append(i[0]))
    with torch.no_grad():
        teacher(torch.stack([calib[i][0] for i in range(len(calib))]))
    hook.remove()
    emb = seen[0].flatten(1)
    assert float(emb.min()) >= 0  # pooled after a ReLU: the quantizer is unsigned, lo = 0
    cfg = TrainConfig(epochs=1, lr=5e-3, batch_size=64, seed=0, loss="qfd", loss_args={"bits": 4})
    res = distill(_student(), teacher, small_digits, cfg, tmp_path, key="k")
    lo, hi = res.loss_facts["teacher_feature_range"]
    assert lo == 0.0 and hi == pytest.approx(float(emb.max()), rel=1e-5)
    last = torch.load(res.last_path, weights_only=True)
    assert last["loss"]["feature_range"].tolist() == pytest.approx([lo, hi])
    assert "loss_qfd" in res.history[0] and "loss_kd" not in res.history[0]
