"""Crash safety through the real CLI: Ctrl-C, SIGKILL + --resume, a full disk, verify."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from edgekd.cli.app import app
from tests.conftest import ROOT, assert_one_line_error, run_cli

ARGS = [
    "--data",
    "digits",
    "--max-train",  # a stratified 500 of digits' 1437: these tests are about the run's
    "500",  # bookkeeping (kill, resume, verify), which does not need every image
    "--epochs",
    "3",
    "--qat-epochs",
    "1",
    "--latency-iters",
    "10",
    "--latency-warmup",
    "2",
    "--calib-size",
    "64",
    "--max-accuracy-drop",
    "100",
    "--quiet",
    "--student",  # a given student: these tests are about the run, not the search
    "mobilenetv3_small_050",
    # the per-block precision choice is made by measured latency, so which blocks run in float
    # can differ between two runs; these tests compare a resumed run with an uninterrupted one
    "--no-mixed-precision",
]


def _default_sigint() -> None:
    """In the child: Ctrl-C's default disposition. A shell without job control starts
    background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt handler;
    the Ctrl-C test must not depend on how the test run itself was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(teacher: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgekd",
            "compress",
            str(teacher),
            "--out",
            str(out),
            *ARGS,
            *extra,
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,
    )


def _wait_for_epoch(out: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Block until distillation has written its first epoch checkpoint."""
    last = out / "distill" / "last.pt"
    t0 = time.time()
    while not last.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.2)
    time.sleep(0.5)


@pytest.mark.parametrize(
    "sig,code,phrase,logged",
    [(signal.SIGINT, 130, "interrupted", "KeyboardInterrupt"),
     # SIGTERM is what CI runners and `timeout` send (issue 25 item 10)
     (signal.SIGTERM, 143, "terminated (SIGTERM)", "Terminated")],
    ids=["ctrl-c", "sigterm"],
)  # fmt: skip
def test_ctrl_c_and_sigterm_keep_the_checkpoint(digits_teacher, tmp_path, sig, code, phrase,
                                                logged):  # fmt: skip
    out = tmp_path / "run"
    proc = _start(digits_teacher, out)
    _wait_for_epoch(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and phrase in lines[0] and "--resume" in lines[0]
    assert (out / "distill" / "last.pt").exists()
    assert not (out / "report.json").exists()
    m = json.loads((out / "manifest.json").read_text())
    assert {s["name"]: s["status"] for s in m["stages"]}["distill"] == "failed"
    assert f"stage distill: failed: {logged}" in (out / "edgekd.log").read_text()


@pytest.fixture(scope="module")
def reference_run(digits_teacher, tmp_path_factory) -> Path:
    """One uninterrupted run with ARGS: the reference of the resume test, and verify's run."""
    ref = tmp_path_factory.mktemp("reliability") / "ref"
    done = run_cli("compress", str(digits_teacher), "--out", str(ref), *ARGS)
    assert done.returncode == 0, done.stderr
    return ref


def test_sigkill_then_resume_equals_an_uninterrupted_run(digits_teacher, reference_run, tmp_path):
    ref = reference_run

    out = tmp_path / "killed"
    proc = _start(digits_teacher, out)
    _wait_for_epoch(out, proc)
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate()
    epochs_before = len(torch.load(out / "distill/last.pt", weights_only=True)["history"])
    assert epochs_before < 3 and not (out / "report.json").exists()

    resumed = run_cli("compress", str(digits_teacher), "--out", str(out), "--resume", *ARGS)
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((ref / "report.json").read_text())
    b = json.loads((out / "report.json").read_text())
    assert [h["val_acc"] for h in a["distill"]["history"]] == [
        h["val_acc"] for h in b["distill"]["history"]
    ]
    assert a["quantization"]["qat_val_acc"] == b["quantization"]["qat_val_acc"]
    for p in a["variants"]:
        assert a["variants"][p]["accuracy"] == b["variants"][p]["accuracy"]
    sa = torch.load(ref / "distill/best.pt", weights_only=True)["model"]
    sb = torch.load(out / "distill/best.pt", weights_only=True)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert run_cli("verify", str(out)).returncode == 0


def test_verify_detects_a_flipped_byte(reference_run, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference_run, out)  # a finished run, moved: verify checks what it holds
    ok = run_cli("verify", str(out))
    assert ok.returncode == 0 and ok.stdout.startswith("ok:")
    art = out / "build/model.ort.onnx"
    data = bytearray(art.read_bytes())
    data[len(data) // 2] ^= 0xFF
    art.write_bytes(bytes(data))
    bad = run_cli("verify", str(out))
    line = assert_one_line_error(bad, "do not match", "build/model.ort.onnx")
    assert "changed" in line and "changed  build/model.ort.onnx" in bad.stdout


def test_disk_full_during_export(digits_teacher, tmp_path, monkeypatch):
    import edgekd.export.onnx_export as ex

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ex.torch.onnx, "export", full)
    out = tmp_path / "run"
    r = CliRunner().invoke(
        app, ["compress", str(digits_teacher), "--out", str(out), *ARGS], catch_exceptions=False
    )
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.exit_code == 1 and len(lines) == 1, r.stderr
    assert "ONNX export failed" in lines[0] and "No space left on device" in lines[0]
    assert not list(out.rglob("*.onnx")) and not list(out.rglob("*.tmp"))
    assert not (out / "report.json").exists()
    m = json.loads((out / "manifest.json").read_text())
    assert m["stages"][0]["name"] == "teacher" and m["stages"][0]["status"] == "failed"


@pytest.mark.parametrize("case", ["unreadable_image", "labels_out_of_range"])
def test_bad_data_through_the_cli(case, tmp_path, monkeypatch):
    from tests.data.test_folder import make_folder

    if case == "unreadable_image":
        data = make_folder(tmp_path / "imgs", per_class=2, size=8)
        (data / "train" / "a" / "zz_broken.png").write_bytes(b"not an image")
        args = [str(data), "--input-shape", "3,32,32"]
        needle = "cannot decode image"
    else:
        (tmp_path / "badlabels.py").write_text(
            "import torch\nfrom torch.utils.data import TensorDataset\n"
            "def make():\n    x = torch.zeros(4, 3, 8, 8)\n"
            "    return ({'train': TensorDataset(x, torch.tensor([0, 1, 2, 7])),"
            " 'val': TensorDataset(x, torch.tensor([0, 1, 0, 1])), 'num_classes': 3})\n"
        )
        args = ["badlabels:make"]
        needle = "labels out of range: 7"
    proc = run_cli(
        "compress",
        "timm:resnet10t",
        "--data",
        *args,
        "--out",
        str(tmp_path / "run"),
        *ARGS[2:],
        cwd=tmp_path,
    )
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "run" / "report.json").exists()
