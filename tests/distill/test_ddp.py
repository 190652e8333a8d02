"""Distillation under torchrun with gloo on the CPU, through the real CLI: 2 processes give a
valid artifact, and their loss curve matches one process with the same global batch.

Tolerance: the per-epoch mean training loss of the 2-process run is within 10% (relative) of
the 1-process run's, and val top-1 within 5 points. They are not bit-equal because batch norm
sees 32 images per rank instead of 64, and the sampler pads 1437 images to 1438 for 2 ranks.
"""

from __future__ import annotations

import json
import sys

import pytest

from edgekd.distill.ddp import launch_command
from tests.conftest import assert_one_line_error, run_cli

ARGS = [
    "--student", "lcnet_050", "--epochs", "2", "--qat-epochs", "1", "--no-augment",
    "--batch-size", "64", "--latency-warmup", "2", "--latency-iters", "10", "--calib-size", "32",
    "--max-accuracy-drop", "100", "--quiet",
]  # fmt: skip


def test_launch_command_single_and_multi_node(tmp_path):
    one = launch_command(tmp_path / "s.json", 2)
    assert one[:4] == [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2"]
    assert "--standalone" in one and one[-3:] == [
        "-m",
        "edgekd.distill.ddp",
        str(tmp_path / "s.json"),
    ]
    multi = launch_command(tmp_path / "s.json", 8, nnodes=4, rdzv_endpoint="head:29400")
    assert "--nnodes=4" in multi and "--rdzv-endpoint=head:29400" in multi
    assert "--standalone" not in multi


def test_two_gloo_processes_match_one_process(digits_teacher, tmp_path):
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"run{n}"
        proc = run_cli("compress", str(digits_teacher), "--out", str(out),
                       "--nproc-per-node", str(n), *ARGS, timeout=1500)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs[n] = json.loads((out / "report.json").read_text())
    two = runs[2]
    assert (tmp_path / "run2/build/model.ort.onnx").exists()  # a valid, validated artifact
    assert json.loads((tmp_path / "run2/distill/ddp_result.json").read_text())["world_size"] == 2
    qat = json.loads((tmp_path / "run2/distill/qat_ddp_result.json").read_text())
    assert qat["world_size"] == 2 and len(qat["history"]) == 1  # QAT ran on 2 ranks too
    assert "qat_val_acc" in two["quantization"]
    assert "under torchrun: 2 process(es)" in (tmp_path / "run2/edgekd.log").read_text()
    for e1, e2 in zip(runs[1]["distill"]["history"], two["distill"]["history"], strict=True):
        for key in ("loss_kd", "loss_ce"):
            assert e2[key] == pytest.approx(e1[key], rel=0.10), (key, e1, e2)
        assert abs(e2["val_acc"] - e1["val_acc"]) <= 5.0


def test_batch_must_split_over_processes(digits_teacher, tmp_path):
    out = tmp_path / "odd"
    proc = run_cli("compress", str(digits_teacher), "--out", str(out), "--nproc-per-node", "2",
                   "--batch-size", "63")  # fmt: skip
    assert_one_line_error(proc, "--batch-size 63 does not split over 2 processes")
    assert not out.exists()


def test_multi_node_needs_a_rendezvous(digits_teacher, tmp_path):
    proc = run_cli("compress", str(digits_teacher), "--out", str(tmp_path / "x"), "--nnodes", "2")
    assert_one_line_error(proc, "--rdzv-endpoint")
