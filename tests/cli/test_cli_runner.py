"""The CLI through typer's runner: help, version, and every bad input -> one line, exit 1."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from edgekd import __version__
from edgekd.cli.app import app
from tests.data.test_folder import make_folder

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


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    torch.save(torch.nn.Linear(2, 2), d / "pickled.pt")
    torch.save({"fc.weight": torch.zeros(10, 4)}, d / "sd.pt")
    (d / "empty.pt").write_bytes(b"")
    (d / "junk.pt").write_bytes(b"\x80\x02}q\x00(X\x05" + bytes(range(200)))
    (d / "afile").write_text("")
    make_folder(d / "one_class", classes=("only",))
    make_folder(d / "three", classes=("a", "b", "c"))
    (d / "no_val").mkdir()
    make_folder(d / "no_val", classes=("a", "b"))
    import shutil

    shutil.rmtree(d / "no_val" / "val")
    return d


def test_missing_teacher(tmp_path):
    one_line(
        invoke("compress", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "r")),
        "teacher file not found",
        "nope.pt",
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "name,needle",
    [
        ("empty.pt", "empty"),
        ("junk.pt", "corrupt or truncated"),
        ("pickled.pt", "--trust-pickle"),
        ("sd.pt", "--arch"),
    ],
)
def test_bad_teacher_files(files, tmp_path, name, needle):
    one_line(invoke("compress", str(files / name), "--out", str(tmp_path / "r")), needle)
    assert not (tmp_path / "r").exists()


def test_unknown_timm_teacher(tmp_path):
    one_line(
        invoke("compress", "timm:resnet1888", "--out", str(tmp_path / "r")),
        "unknown timm model",
        "resnet1888",
    )


def test_unknown_student(tmp_path):
    one_line(
        invoke(
            "compress", "timm:resnet10t", "--student", "mobilenetv9", "--out", str(tmp_path / "r")
        ),
        "unknown timm model",
        "mobilenetv9",
    )


def test_unknown_target(tmp_path):
    one_line(
        invoke("compress", "timm:resnet10t", "--target", "jetsonn"),
        "unknown target",
        "jetsonn",
        "host",
    )


def test_unwritable_out(files):
    one_line(
        invoke("compress", "timm:resnet10t", "--out", str(files / "afile" / "run")),
        "cannot write the run directory",
    )


@pytest.mark.parametrize(
    "data,needle",
    [
        ("one_class", "only one class"),
        ("no_val", "no val/ subfolder"),
        ("does/not/exist", "data source not found"),
        ("nosuchmod_xyz:make", "cannot import data factory"),
    ],
)
def test_bad_data(files, tmp_path, data, needle):
    path = str(files / data) if not data.startswith(("does", "nosuch")) else data
    one_line(
        invoke("compress", "timm:resnet10t", "--data", path, "--out", str(tmp_path / "r")), needle
    )


def test_teacher_classes_do_not_match_data(files, tmp_path):
    # a digits teacher (10 classes) against a 3-class folder
    from edgekd.models import create_timm, save_checkpoint

    ck = save_checkpoint(tmp_path / "t.pt", create_timm("resnet10t", 10), "resnet10t", 10)
    one_line(
        invoke(
            "compress",
            str(ck),
            "--data",
            str(files / "three"),
            "--input-shape",
            "3,32,32",
            "--out",
            str(tmp_path / "r"),
        ),
        "classes do not match",
        "10 vs data 3",
    )


def test_input_shape_mismatch(tmp_path):
    import torch.nn as nn

    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval()
    p = tmp_path / "fixed.ts"
    torch.jit.trace(net, torch.zeros(1, 3, 32, 32)).save(str(p))
    one_line(
        invoke("compress", str(p), "--data", "digits", "--input-shape", "3,16,16"),
        "cannot run on input shape 3,16,16",
        "--input-shape",
    )


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--latency-budget-ms", "0"),
        ("--latency-budget-ms", "-3"),
        ("--max-accuracy-drop", "-1"),
        ("--epochs", "0"),
        ("--input-shape", "3,32"),
    ],
)
def test_bad_values(flag, value):
    one_line(invoke("compress", "timm:resnet10t", flag, value), flag)


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
