"""--weight-average swad (SWAD's window, vorobeevich/distillation-in-dg src/swad/swad_utils.py
SWAD.update/finish): the window's opening, averaging and closing walked through by hand on a
one-weight model with scripted validation losses, segments of several steps, and a trainer
run that keeps the window's average and resumes it."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from edgekd.distill import TrainConfig, distill
from edgekd.distill.averaging import Swad
from edgekd.errors import ConfigError
from tests.distill._runs import crash_after_first_epoch
from tests.distill.ddp_step_worker import toy_data, toy_net


def _walk(weights, losses, frequency=1, **kw):
    net = nn.Linear(1, 1, bias=False)
    script = iter(losses)
    swad = Swad(net, frequency, lambda _m: next(script), **kw)
    for step, w in enumerate(weights):
        with torch.no_grad():
            net.weight.fill_(w)
        swad.update(net, step)
    return swad


def test_the_window_by_hand():
    # segment i (one step each) has weight i; losses L0..L8 = 5 4 3 3.5 3.6 3.7 10 10 10.
    # n_converge 3: at L3 the last three are 4 3 3.5, the first not the lowest: segment 0 is
    # dropped. At L4 they are 3 3.5 3.6: the first is the lowest, so the window opens with
    # segment 1 (the queued one before them), threshold 1.3 x mean(3, 3.5, 3.6) = 4.3767.
    # n_tolerance 2: from then on the oldest queued segment joins each time: 2 at L5, 3 at L6,
    # 4 at L7; at L7 both of the last two losses (10, 10) exceed the threshold: closed. The
    # average is mean(1, 2, 3, 4) = 2.5.
    losses = [5, 4, 3, 3.5, 3.6, 3.7, 10, 10, 10]
    s = _walk(range(9), losses, n_converge=3, n_tolerance=2, tolerance_ratio=1.3)
    assert s.begun and s.finished and s.opened_at == 1
    assert s.threshold == pytest.approx(1.3 * (3 + 3.5 + 3.6) / 3)
    assert s.n == 4 and s.state["weight"].item() == pytest.approx(2.5)
    assert s.queue == []  # the segments after the close are dropped
    s.finish()
    assert s.state["weight"].item() == pytest.approx(2.5)  # closed: nothing joins at the end


def test_an_open_window_takes_the_queue_at_the_end():
    # the loss never rises again: at L4 the window opens with segment 1 (as above), leaving
    # segments 2, 3, 4 queued; with n_tolerance 6 the oldest joins once 5 are queued: not at
    # L5 (4 queued), at L6 (5 queued: segment 2 joins). finish() adds 3..6: mean(1..6) = 3.5
    losses = [5, 4, 3, 3.5, 3.6, 3.7, 3.8]
    s = _walk(range(7), losses, n_converge=3, n_tolerance=6)
    assert s.begun and not s.finished and s.n == 2
    assert s.state["weight"].item() == pytest.approx(1.5)
    s.finish()
    assert s.n == 6 and s.state["weight"].item() == pytest.approx(3.5)


def test_segments_average_their_steps_and_a_falling_loss_never_opens():
    # frequency 2: segment k averages steps 2k and 2k+1; a loss that keeps falling never has
    # its first of three the lowest
    s = _walk([0, 1, 2, 3, 4, 5, 6, 7], [4, 3, 2, 1], frequency=2, n_converge=3)
    assert len(s.losses) == 4 and not s.begun and s.state is None
    s2 = _walk([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 5], frequency=2, n_converge=3,
               n_tolerance=1)  # fmt: skip
    # L3: last three 2 3 4, first lowest: opens with segment 0 (mean of steps 0, 1 = 0.5)
    assert s2.opened_at == 0 and s2.threshold == pytest.approx(1.3 * 3)
    # n_tolerance 1: the next queued segment joins at once, and the last loss alone decides:
    # L3 = 4 > 3.9, so it closes at once, dropping the queued segments 2 and 3
    assert s2.finished and s2.n == 2 and s2.state["weight"].item() == pytest.approx(1.5)


def _run(tmp_path, **kw):
    student = toy_net(1)
    cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=16, seed=0, weight_average="swad",
                      swad_args={"frequency": 1, "n_converge": 2, "n_tolerance": 3})  # fmt: skip
    return student, distill(student, toy_net(0), toy_data(), cfg, tmp_path, key="k", **kw)


def test_the_trainer_keeps_the_windows_average_and_resumes_it(tmp_path):
    said: list[str] = []
    full, ref = _run(tmp_path / "a", on_message=said.append)
    facts = ref.loss_facts["weight_average"]
    assert facts["window"] == "swad" and facts["segments"] == 3 * 8  # 128 images / 16
    assert any(m.startswith("SWAD window: segments of 1 steps") for m in said)
    best = torch.load(ref.best_path, weights_only=True)
    # n_converge 2 on the toy run's losses: the window opens within the first epoch
    assert facts["segments_averaged"] > 0 and facts["opened_at_segment"] is not None
    assert best["swad"]["segments_averaged"] == facts["segments_averaged"]
    assert ref.best_val_acc == best["val_acc"] and ref.best_epoch == 3
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", on_epoch=crash_after_first_epoch)
    _, res = _run(tmp_path / "b", resume=True)
    assert res.loss_facts["weight_average"] == facts
    again = torch.load(res.best_path, weights_only=True)
    for k, v in best["model"].items():
        assert torch.equal(v, again["model"][k]), k


def test_swad_needs_labels_and_known_arguments(tmp_path):
    data = toy_data()
    cfg = TrainConfig(epochs=1, lr=1e-2, batch_size=16, weight_average="swad",
                      swad_args={"n_conv": 2})  # fmt: skip
    with pytest.raises(ConfigError, match="unknown --swad-args"):
        distill(toy_net(1), toy_net(0), data, cfg, tmp_path / "a")
    data = dataclasses.replace(data, labeled=False)
    with pytest.raises(ConfigError, match="no labels"):
        distill(toy_net(1), toy_net(0), data, TrainConfig(epochs=1, lr=1e-2, batch_size=16,
                weight_average="swad"), tmp_path / "b")  # fmt: skip


def test_the_report_says_which_window_was_averaged():
    from edgekd.report.text import averaging_note

    facts = {"window": "swad", "frequency": 4, "segments": 23, "opened_at_segment": 0,
             "closed_at_segment": 22, "segments_averaged": 23}  # fmt: skip
    r = {"distill": {"weight_average": {"start": None, "window": "swad", "bn": "recompute"},
                     "loss_facts": {"weight_average": facts}}}  # fmt: skip
    assert averaging_note(r) == (", weights averaged over SWAD's window: segments 1-23 of 23 "
                                 "(4 steps each)")  # fmt: skip
    facts["segments_averaged"] = 0
    assert "never opened in 23 segments" in averaging_note(r)
    r["distill"]["weight_average"] = {"start": 0.1, "window": "uniform", "bn": "frozen"}
    want = ", weights averaged uniformly from 10% of the steps (BatchNorm frozen)"
    assert averaging_note(r) == want
    assert averaging_note({"distill": {"weight_average": None}}) == ""
