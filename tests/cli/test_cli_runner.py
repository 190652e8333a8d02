"""The CLI through typer's runner: help, version, and every bad input -> one line, exit 1."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from edgekd import __version__
from edgekd.cli.app import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def one_line(result, *needles):
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


def test_version():
    r = invoke("version")
    assert r.exit_code == 0 and r.stdout.strip() == __version__


def test_compress_help_lists_every_option():
    r = invoke("compress", "--help")
    assert r.exit_code == 0
    for opt in (
        "--data",
        "--target",
        "--student",
        "--out",
        "--arch",
        "--input-shape",
        "--trust-pickle",
        "--epochs",
        "--qat-epochs",
        "--latency-budget-ms",
        "--max-accuracy-drop",
        "--resume",
        "--force",
        "--debug",
        "--threads",
    ):
        assert opt in r.stdout, opt


def test_debug_shows_traceback(tmp_path):
    r = invoke("compress", str(tmp_path / "nope.pt"), "--debug")
    assert r.exit_code == 1 and "Traceback" in r.stderr


def test_cuda_device_without_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the no-GPU error cannot be provoked")
    one_line(
        invoke("compress", "timm:resnet10t", "--device", "cuda", "--out", str(tmp_path / "r")),
        "CUDA device not available",
        "--device cpu",
    )


def test_bad_device_value():
    one_line(invoke("compress", "timm:resnet10t", "--device", "gpu0"), "--device")


def test_unknown_calibration_method(tmp_path):
    one_line(
        invoke("compress", "timm:resnet10t", "--calib", "kl", "--out", str(tmp_path / "r")),
        "unknown calibration method",
        "entropy",
    )
    assert not (tmp_path / "r").exists()


@pytest.fixture
def one_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_more_processes_than_gpus(tmp_path, one_gpu):
    out = tmp_path / "r"
    args = ("timm:resnet10t", "--device", "cuda", "--nproc-per-node", "2", "--out", str(out))
    one_line(invoke("compress", *args), "--nproc-per-node 2 with 1 visible GPU", "--device cpu")
    one_line(invoke("search", *args), "--nproc-per-node 2 with 1 visible GPU", "--device cpu")
    assert not out.exists()


def test_torchrun_rank_without_its_gpu(tmp_path, one_gpu, monkeypatch):
    """Rank 1 of a 2-rank torchrun on a node with one GPU: no cuda:1 to train on."""
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": "29555"}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "r"
    args = ("timm:resnet10t", "--device", "cuda", "--out", str(out))
    one_line(invoke("compress", *args), "LOCAL_RANK + 1 = 2 with 1 visible GPU")
    one_line(invoke("search", *args), "LOCAL_RANK + 1 = 2 with 1 visible GPU")
    assert not out.exists()
