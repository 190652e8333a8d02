"""--weight-average (WAKD, vorobeevich/distillation-in-dg swa_utils.py AveragedModel): the
uniform running mean of the parameters from the start step, BatchNorm frozen or recomputed,
the average validated and checkpointed, and a resumed run equal to an uninterrupted one."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekd.distill import TrainConfig
from edgekd.distill.averaging import WeightAverage, recompute_bn
from tests.distill._runs import crash_after_first_epoch, train_pair


def test_the_average_is_the_mean_of_the_weights_after_each_step_from_the_start():
    net = nn.Linear(1, 1, bias=False)
    wa = WeightAverage(net, start=2)
    seen = []
    for step, w in enumerate([5.0, 7.0, 1.0, 2.0, 6.0]):
        with torch.no_grad():
            net.weight.fill_(w)
        wa.update(net, step)
        seen.append(w)
    # steps 2, 3, 4 are averaged: (1 + 2 + 6) / 3
    assert wa.n == 3 and wa.state["weight"].item() == pytest.approx(3.0)
    with wa.swapped_in(net):
        assert net.weight.item() == pytest.approx(3.0)
    assert net.weight.item() == 6.0  # its own weight back


def test_batchnorm_frozen_stays_in_eval_and_recompute_measures_the_average():
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.BatchNorm2d(2))
    frozen = WeightAverage(net, 0, bn="frozen")
    frozen.train_mode(net)
    assert net.training and not net[1].training
    # recompute: the statistics of the averaged conv over the batches, a cumulative mean
    wa = WeightAverage(net, 0)
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    wa.update(net, 0)
    with torch.no_grad():
        net[0].weight.fill_(3.0)
    wa.update(net, 1)  # average weight 2
    batches = [torch.full((4, 1, 2, 2), 1.0), torch.full((4, 1, 2, 2), 2.0)]
    with wa.swapped_in(net, iter(batches)):
        # conv output 2 * x: means 2 and 4, cumulative mean 3
        assert net[1].running_mean.tolist() == pytest.approx([3.0, 3.0])
    assert net[1].running_mean.tolist() == pytest.approx([0.0, 0.0])  # restored
    recompute_bn(net, [torch.full((2, 1, 1, 1), 5.0)])
    assert net[1].running_mean.tolist() == pytest.approx([15.0, 15.0]) and net[1].momentum == 0.1


def test_the_average_is_validated_kept_and_resumed(tmp_path, small_digits):
    cfg = TrainConfig(epochs=2, lr=5e-3, batch_size=64, seed=0, weight_average=0.5)
    said: list[str] = []
    full, ref = train_pair(tmp_path / "a", small_digits, cfg, on_message=said.append)
    assert any("weight average from step 5 of 8" in m for m in said), said
    best = torch.load(ref.best_path, weights_only=True)
    last = torch.load(ref.last_path, weights_only=True)
    assert last["weight_average"]["n"] == 4  # steps 4..7 of 2 x 4
    assert best["weight_average"] == (best["epoch"] == 2)  # epoch 1 ends before step 5
    if best["epoch"] == 2:  # the kept weights are the average, not the last step's
        avg = last["weight_average"]["state"]
        k = next(iter(avg))
        assert torch.equal(best["model"][k], avg[k]) and best["weight_average"]

    with pytest.raises(KeyboardInterrupt):
        train_pair(tmp_path / "b", small_digits, cfg, on_epoch=crash_after_first_epoch)
    resumed, res = train_pair(tmp_path / "b", small_digits, cfg, resume=True)
    assert [r["val_acc"] for r in res.history] == [r["val_acc"] for r in ref.history]
    again = torch.load(res.last_path, weights_only=True)["weight_average"]
    for k, v in last["weight_average"]["state"].items():
        assert torch.equal(v, again["state"][k]), k


def test_swad_args_accepted_by_the_config_are_the_ones_the_trainer_reads():
    from edgekd.config import SWAD_ARGS
    from edgekd.distill.averaging import SWAD_DEFAULTS

    assert set(SWAD_ARGS) == set(SWAD_DEFAULTS) | {"frequency"}
