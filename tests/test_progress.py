"""edgekd.progress: counted lines with an ETA, on a clock the test drives."""

from __future__ import annotations

from edgekd.progress import Tally, duration


def test_duration():
    assert [duration(s) for s in (0, 4.4, 59.6, 65, 3599, 3720)] == [
        "0s", "4s", "1m00s", "1m05s", "59m59s", "1h02m"
    ]  # fmt: skip


def make(every=2.0):
    now = [0.0]
    lines: list[str] = []
    return Tally(lines.append, "calibration", "batches", every, clock=lambda: now[0]), now, lines


def test_a_short_loop_says_nothing():
    tally, now, lines = make()
    for i in range(1, 5):
        now[0] = i * 0.4  # 4 batches in 1.6 s, under `every`
        tally(i, 4)
    assert lines == []


def test_a_long_loop_says_count_and_eta_then_the_total_time():
    tally, now, lines = make()
    for i in range(1, 11):
        now[0] = i * 1.0  # one batch a second, 10 batches
        tally(i, 10, note=f"b{i}")
    # the first line once 2 s have passed, then every 2 s; ETA = 1 s/batch x batches left
    assert lines == [
        "calibration 2/10 batches: b2 (ETA 8s)",
        "calibration 4/10 batches: b4 (ETA 6s)",
        "calibration 6/10 batches: b6 (ETA 4s)",
        "calibration 8/10 batches: b8 (ETA 2s)",
        "calibration 10/10 batches: b10 (in 10s)",
    ]


def test_every_zero_says_each_item():
    tally, now, lines = make(every=0)
    for i in range(1, 4):
        now[0] = 30.0 * i
        tally(i, 3)
    assert lines == [
        "calibration 1/3 batches (ETA 1m00s)",
        "calibration 2/3 batches (ETA 30s)",
        "calibration 3/3 batches (in 1m30s)",
    ]
