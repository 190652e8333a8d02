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
            "--student",  # the search is tested elsewhere; here the API's chain and output
            "lcnet_050",
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


def test_slurm_example_parses_and_uses_real_options():
    script = ROOT / "examples/slurm/distill-multinode.sbatch"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    text = script.read_text().replace("\\\n", " ")
    line = next(ln for ln in text.splitlines() if "-m edgekd compress" in ln)
    assert "torchrun" in line and "--nnodes 2" in line and "--nproc-per-node 4" in line
    options = [w for w in line.split("-m edgekd compress", 1)[1].split() if w.startswith("--")]
    assert "--nproc-per-node" not in options  # torchrun starts the ranks; edgekd refuses it
    help_text = subprocess.run(
        [sys.executable, "-m", "edgekd", "compress", "--help"],
        capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip
    for opt in options:
        assert opt in help_text, opt
