"""`edgekd compress --device user@host` for a CPU target, against the loopback sshd: latency
and the artifact's accuracy are measured 'on the device' and gated."""

from __future__ import annotations

import json
import sys

import pytest

from tests.cli.test_kd_cli import QUICK
from tests.conftest import run_cli


def test_compress_validates_on_the_device(digits_teacher, loopback_ssh, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "compress", str(digits_teacher), "--target", "raspberry-pi-5", "--out", str(out),
        "--student", "mobilenetv3_small_050",
        "--device", loopback_ssh.dest, *loopback_ssh.cli_options(),
        "--remote-python", sys.executable, "--max-train", "300", *QUICK,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "report.json").read_text())
    assert r["latency_source"].startswith(f"measured on the device {loopback_ssh.dest}")
    for m in [r["teacher"], *r["variants"].values()]:
        assert m["latency"]["measured"] is True and "127.0.0.1" in m["latency"]["runtime"]
    for m in r["variants"].values():  # the same ONNX Runtime build: identical predictions
        assert m["device_accuracy"] == pytest.approx(m["accuracy"])
        assert m["device_agreement"] == 100.0
    gate = next(g for g in r["verdict"]["gates"] if g["name"] == "device accuracy")
    assert gate["passed"] and gate["value"] == pytest.approx(0.0) and gate["limit"] == 1.0
    assert "**On the device**" in (out / "report.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["config"]["remote"] == loopback_ssh.dest
    assert manifest["run"]["config"]["device"] == "auto"  # training stayed here
