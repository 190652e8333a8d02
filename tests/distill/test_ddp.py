"""Distillation under torchrun with gloo on the CPU.

That 2 ranks train like one process is checked by properties that hold exactly: the rank
shards of an epoch deal out the one-process permutation, and on a student without batch
statistics 2 gloo ranks take the same optimizer steps as one process (to 1e-5). Loss curves
of real students are not compared: batch norm sees 32 images per rank instead of 64, and a
short run amplifies the difference in machine-dependent ways. The real CLI runs once with 2
processes and must ship a validated artifact.
"""

from __future__ import annotations

import json
import sys

import pytest

from edgekd.distill.ddp import launch_command
from tests.conftest import assert_one_line_error, run_cli

ARGS = [
    "--student", "lcnet_050", "--epochs", "1", "--qat-epochs", "1", "--no-augment",
    "--batch-size", "64", "--latency-warmup", "2", "--latency-iters", "10", "--calib-size", "32",
    "--max-accuracy-drop", "100", "--quiet",
    "--max-train", "256",  # the ranks' sharing, not the training, is tested
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


def test_two_gloo_processes_give_a_validated_artifact(digits_teacher, tmp_path):
    # the real CLI with --nproc-per-node 2: both phases run on 2 ranks and the artifact ships;
    # that 2 ranks train like 1 process is checked exactly below, not on loss curves
    out = tmp_path / "run2"
    proc = run_cli("compress", str(digits_teacher), "--out", str(out), "--nproc-per-node", "2",
                   *ARGS, timeout=1500)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"]["passed"] is True
    assert (out / "build/model.ort.onnx").exists()  # a valid, validated artifact
    assert (out / "validate/metrics.json").exists()
    assert json.loads((out / "distill/ddp_result.json").read_text())["world_size"] == 2
    qat = json.loads((out / "distill/qat_ddp_result.json").read_text())
    assert qat["world_size"] == 2 and len(qat["history"]) == 1  # QAT ran on 2 ranks too
    assert "qat_val_acc" in report["quantization"]
    assert len(report["distill"]["history"]) == 1
    assert "under torchrun: 2 process(es)" in (out / "edgekd.log").read_text()


def _step_run(tmp_path, nproc: int, extras: str = "") -> dict:
    import os
    import subprocess

    from tests.conftest import ROOT

    out = tmp_path / f"world{nproc}"
    out.mkdir()
    worker = str(ROOT / "tests/distill/ddp_step_worker.py")
    launch = [sys.executable]
    if nproc > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run([*launch, worker, str(out), extras], cwd=ROOT, env=env, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    import torch

    if extras:
        return {r: torch.load(out / f"student_rank{r}.pt", weights_only=True)
                for r in range(nproc)}  # fmt: skip
    return torch.load(out / "student.pt", weights_only=True)


def test_mixup_and_weight_average_under_two_gloo_ranks(tmp_path):
    # each rank mixes its own share of the batch (seeded by rank); DDP keeps the weights in
    # step, so both ranks hold the same model and the same averaged weights
    import math

    import torch

    ranks = _step_run(tmp_path, 2, "mixup")
    for name, w0 in ranks[0]["model"].items():
        torch.testing.assert_close(ranks[1]["model"][name], w0, rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(ranks[1]["best"][name], ranks[0]["best"][name], rtol=0,
                                   atol=1e-6, msg=name)  # fmt: skip
    assert math.isfinite(ranks[0]["history"][0]["loss_kd"])
    # the kept (best) weights are the average of the two steps, not the last step's
    assert any(not torch.equal(ranks[0]["best"][k], v) for k, v in ranks[0]["model"].items())


def test_hard_under_two_gloo_ranks(tmp_path):
    # each rank augments its own share; the augmentor's gradients are averaged over the
    # ranks (else the all-reduce would hang), DDP keeps the students equal
    import torch

    ranks = _step_run(tmp_path, 2, "hard")
    for name, w0 in ranks[0]["model"].items():
        torch.testing.assert_close(ranks[1]["model"][name], w0, rtol=0, atol=1e-6, msg=name)
    assert 0.0 <= ranks[0]["history"][0]["hard_kept"] <= 1.0


def test_two_gloo_ranks_take_the_same_steps_as_one_process(tmp_path):
    # same global batch (64 = 2 x 32), same seed, a student without batch statistics: the
    # per-rank mean losses average to the global mean, so DDP's averaged gradient is the
    # one-process gradient and both optimizer steps land on the same weights
    import torch

    from tests.distill.ddp_step_worker import toy_net

    one, two = _step_run(tmp_path, 1), _step_run(tmp_path, 2)
    assert (one["world"], two["world"]) == (1, 2)
    start = toy_net(1).state_dict()
    for name, w1 in one["model"].items():
        w2 = two["model"][name]
        assert not torch.equal(w1, start[name]), name  # the steps really moved the weights
        torch.testing.assert_close(w2, w1, rtol=0, atol=1e-5, msg=name)
    assert two["history"][0]["loss_kd"] == pytest.approx(one["history"][0]["loss_kd"], abs=1e-5)


@pytest.mark.parametrize("n", [128, 1437])
def test_rank_shards_deal_out_the_one_process_permutation(n):
    # the union of the rank shards is the one-process permutation of that epoch, step by step
    import torch
    from torch.utils.data import TensorDataset

    from edgekd.distill.trainer import _World, epoch_loader

    ds = TensorDataset(torch.arange(n))
    for seed, epoch in ((0, 0), (3, 5)):
        single = [b[0].tolist() for b in epoch_loader(ds, 64, _World(), seed, epoch)]
        shards = [[b[0].tolist() for b in epoch_loader(ds, 64, _World(r, 2), seed, epoch)]
                  for r in (0, 1)]  # fmt: skip
        assert len(shards[0]) == len(shards[1]) == len(single)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        assert [i for b in single for i in b] == perm  # one process: randperm(seed + epoch)
        for k, batch in enumerate(single):
            dealt = [i for pair in zip(shards[0][k], shards[1][k], strict=True) for i in pair]
            if k < len(single) - 1 or n % 2 == 0:
                assert dealt == batch, (seed, epoch, k)
            else:  # an odd count: the last rank's tail is padded with the first index
                assert dealt[: len(batch)] == batch and dealt[len(batch)] == single[0][0]


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
