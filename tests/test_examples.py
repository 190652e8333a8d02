"""The runnable examples run."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_python_api_example(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples/python_api.py"),
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "api"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "exit code 0; shipped build/model.ort.onnx" in proc.stdout
    assert "predicted on jetson-orin-nano-8gb" in proc.stdout
