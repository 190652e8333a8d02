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
            "--max-train",  # the API's chain and output are tested, not the training
            "300",
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


def test_fashion_teacher_recipe_keeps_its_best_epoch_and_measures_test(tmp_path):
    """examples/fashion/train_teacher.py on a folder of IDX files: the checkpoint is the best
    val epoch, and the test accuracy in its JSON is that checkpoint's, recomputed here."""
    import json

    from edgekd.data import load_data
    from edgekd.models import load_teacher
    from edgekd.models.evaluate import evaluate_torch
    from tests.data.test_fashion import write_set

    write_set(tmp_path / "fm", n_train=300, n_test=40)
    out = tmp_path / "teacher.pt"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples/fashion/train_teacher.py"), "--data",
         f"fashion-mnist:{tmp_path / 'fm'}", "--arch", "resnet10t", "--epochs", "2",
         "--max-train", "100", "--batch-size", "32", "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "epoch 2/2" in proc.stdout and "ETA" in proc.stdout
    info = json.loads(out.with_suffix(".json").read_text())
    vals = [h["val_acc"] for h in info["history"]]
    assert info["best_epoch"] == vals.index(max(vals)) + 1 and info["best_val_acc"] == max(vals)
    teacher = load_teacher(str(out))
    assert teacher.input_shape == (3, 32, 32)
    data = load_data(f"fashion-mnist:{tmp_path / 'fm'}", teacher.input_shape)
    assert evaluate_torch(teacher.module, data.test)[0] == info["test_acc"]
    assert evaluate_torch(teacher.module, data.val)[0] == info["best_val_acc"]
    assert f"test top-1 {info['test_acc']:.2f}%" in proc.stdout
