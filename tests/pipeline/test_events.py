"""edgekd.pipeline.events: edgekd.log gets every event, and a heartbeat when nothing comes."""

from __future__ import annotations

import time

from edgekd.pipeline.events import LogFileReporter, Reporter


class Record(Reporter):
    def __init__(self) -> None:
        self.beats: list[str] = []

    def heartbeat(self, text: str) -> None:
        self.beats.append(text)


def lines(path) -> list[str]:
    return [ln[20:] for ln in path.read_text().splitlines()]  # past the "YYYY-mm-dd HH:MM:SS "


def test_silence_gets_a_heartbeat_naming_the_activity(tmp_path):
    inner = Record()
    rep = LogFileReporter(inner, tmp_path / "edgekd.log")
    with rep.watch(interval=0.2):
        rep.message("validating the teacher (FP32 ONNX)")
        time.sleep(0.7)  # silent work
    got = lines(tmp_path / "edgekd.log")
    assert got[0] == "validating the teacher (FP32 ONNX)"
    beats = got[1:]
    assert beats and beats == inner.beats  # the console reporter sees the same lines
    assert all(b.startswith("… still running, ") for b in beats)
    assert all(b.endswith(" since: validating the teacher (FP32 ONNX)") for b in beats)


def test_a_training_heartbeat_is_the_live_step_with_the_phase_eta(tmp_path):
    rep = LogFileReporter(Record(), tmp_path / "edgekd.log")
    with rep.watch(interval=0.2):
        rep.epochs_start("distill", 4, 10)
        # the trainer reports the steps done in the epoch: epoch 2, step 5: 15 of 40 steps done
        rep.step("distill", 1, 5, 10)
        time.sleep(0.5)
    beats = [b for b in lines(tmp_path / "edgekd.log") if b.startswith("…")]
    assert beats and all(b.startswith("… distill epoch 2/4, step 5/10 (phase ETA ") for b in beats)


def test_no_heartbeat_while_lines_keep_coming_nor_after_the_run(tmp_path):
    rep = LogFileReporter(Record(), tmp_path / "edgekd.log")
    with rep.watch(interval=5.0):
        for i in range(5):
            rep.message(f"line {i}")
            time.sleep(0.05)
    time.sleep(0.2)
    assert lines(tmp_path / "edgekd.log") == [f"line {i}" for i in range(5)]
