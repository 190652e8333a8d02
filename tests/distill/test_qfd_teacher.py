"""QFD's teacher fine-tuning (qfd teacher_epochs=N, edgekd.distill.qfd_teacher): a copy of the
teacher learns with the feature quantizer in place, the user's teacher is left alone, the
tuned teacher's classifier sees only quantized features, and a resumed run loads it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from edgekd.distill import TrainConfig, distill
from edgekd.distill.qfd_teacher import quantize_embedding
from edgekd.errors import ConfigError
from tests.distill.ddp_step_worker import toy_data, toy_net


def test_the_quantizer_hook_rounds_forward_and_passes_the_gradient():
    net = toy_net(0)
    handle = quantize_embedding(net, 0.0, 1.0, 2)  # levels 0, 1/3, 2/3, 1
    seen = {}
    net[-1].register_forward_pre_hook(lambda _m, i: seen.__setitem__("x", i[0]))
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    net(x).sum().backward()
    grid = seen["x"] * 3
    assert torch.allclose(grid, grid.round(), atol=1e-5)  # on the 2-bit grid
    assert x.grad is not None and x.grad.abs().sum() > 0  # straight through
    handle.remove()


def _cfg(epochs=2, **args):
    return TrainConfig(epochs=epochs, lr=1e-2, batch_size=32, seed=0, loss="qfd",
                       loss_args={"bits": 2, "teacher_epochs": 1, **args})  # fmt: skip


def test_the_teacher_is_fine_tuned_on_a_copy_and_resumed(tmp_path):
    teacher = toy_net(0)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    said: list[str] = []
    distill(toy_net(1), teacher, toy_data(), _cfg(), tmp_path, key="k", on_message=said.append)
    tuned = [m for m in said if m.startswith("qfd: fine-tuning the teacher with its 2-bit")]
    assert len(tuned) == 1 and "epoch 1/1" in tuned[0]
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k  # the user's teacher is untouched
    saved = torch.load(tmp_path / "qfd_teacher.pt", weights_only=True)
    lo, hi = saved["range"]
    assert lo == 0.0 and hi > 0 and saved["bits"] == 2  # after ReLU and pooling: lo = 0
    assert any(not torch.equal(v, before[k]) for k, v in saved["model"].items())
    # the range the fine-tuning used is the one the loss quantizes with
    assert any(f"quantized to 2 bits on [0, {hi:.4g}]" in m for m in said)
    again: list[str] = []
    distill(toy_net(1), teacher, toy_data(), _cfg(), tmp_path, key="k", resume=True,
            on_message=again.append)  # fmt: skip
    assert not any(m.startswith("qfd: fine-tuning") for m in again)  # loaded, not retrained


def test_fine_tuning_needs_labels(tmp_path):
    data = dataclasses.replace(toy_data(), labeled=False)
    with pytest.raises(ConfigError, match="fine-tunes the teacher on the labels"):
        distill(toy_net(1), toy_net(0), data, _cfg(ce=0.0), tmp_path)
