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


def _torchrun(*args: str, nproc: int = 2, timeout: int = 1500):
    """`torchrun --standalone --nproc-per-node N -m edgekd ARGS`, via torch.distributed.run."""
    import os
    import subprocess

    from tests.conftest import ROOT

    env = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="200", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "edgekd", *args]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)  # fmt: skip


def test_outer_torchrun_launch_is_detected(digits_teacher, tmp_path):
    # `torchrun -m edgekd compress`: rank 0 leads, both ranks train, only rank 0 writes/prints
    out = tmp_path / "outer"
    proc = _torchrun("compress", str(digits_teacher), "--out", str(out), *ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("verdict:") == 1, proc.stdout  # rank 1 prints nothing
    assert (out / "build/model.ort.onnx").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"]["passed"] is True
    for name in ("ddp_result.json", "qat_ddp_result.json"):
        assert json.loads((out / "distill" / name).read_text())["world_size"] == 2
    log = (out / "edgekd.log").read_text()
    assert "distill over the 2 torchrun ranks" in log and "qat over the 2 torchrun ranks" in log


def test_torchrun_launch_from_the_environment():
    from edgekd.distributed import torchrun_launch

    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "head"}
    got = torchrun_launch(env)
    assert (got.rank, got.world_size, got.local_rank, got.leader) == (3, 4, 1, False)
    assert torchrun_launch({"WORLD_SIZE": "1", "RANK": "0", "MASTER_ADDR": "x"}) is None
    assert torchrun_launch({}) is None  # a plain `edgekd compress`


def test_nproc_inside_torchrun_is_one_line(digits_teacher, tmp_path, monkeypatch):
    from edgekd.config import CompressConfig
    from edgekd.errors import ConfigError
    from edgekd.pipeline.compress import compress

    for k, v in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": "1"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    out = tmp_path / "x"
    cfg = CompressConfig(teacher=str(digits_teacher), out=out, nproc_per_node=2)
    with pytest.raises(ConfigError, match="already running under torchrun"):
        compress(cfg)
    with pytest.raises(ConfigError, match="split evenly"):
        compress(CompressConfig(teacher=str(digits_teacher), out=out, batch_size=63))
    assert not out.exists()


def test_rank0_failure_under_torchrun_stops_every_rank(digits_teacher, tmp_path):
    # only rank 0 touches the run directory: its refusal must not leave rank 1 waiting
    out = tmp_path / "taken"
    out.mkdir()
    (out / "manifest.json").write_text('{"an": "earlier run"}')
    proc = _torchrun("compress", str(digits_teacher), "--out", str(out), *ARGS, timeout=300)
    assert proc.returncode == 1  # torchrun's code for a failed rank
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-2000:]  # rank 0's line; rank 1 stopped quietly
    assert "already holds a run" in errors[0]
    assert "exitcode  : 1" in proc.stderr  # rank 0 exited with its error, not a signal
    assert (out / "manifest.json").read_text() == '{"an": "earlier run"}'
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
