"""The distillation options through the real `edgekd` command: --kd-loss / --kd-args, the
teacher cache with --no-augment, label-free image folders, `edgekd losses`, and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli

QUICK = [
    "--student", "mobilenetv3_small_050",
    "--epochs", "1", "--qat-epochs", "0", "--latency-warmup", "2", "--latency-iters", "10",
    "--calib-size", "32", "--max-accuracy-drop", "100", "--quiet",
]  # fmt: skip


def test_losses_lists_every_method_with_its_arguments():
    proc = run_cli("losses")
    assert proc.returncode == 0, proc.stderr
    for name in ("kd", "dkd", "ttm", "wttm", "nkd", "luminet", "nd", "akl", "fitnet", "fa", "ce",
                 "sinkd", "cakld", "ofa", "mixstd"):  # fmt: skip
        assert any(line.startswith(f"{name} ") for line in proc.stdout.splitlines()), name
    assert "warmup=1.0" in proc.stdout and "[needs features]" in proc.stdout


def test_dkd_with_args_and_cached_teacher(digits_teacher, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "compress", str(digits_teacher), "--out", str(out), "--kd-loss", "dkd",
        "--kd-args", "beta=4,warmup=0.5", "--no-augment", "--max-train", "400", *QUICK,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "report.json").read_text())
    assert r["distill"]["loss"] == "dkd"
    assert r["distill"]["loss_args"] == {"beta": 4.0, "warmup": 0.5}
    assert r["distill"]["teacher_cache"] == "memory"
    assert {"loss_tckd", "loss_nckd", "loss_ce"} <= set(r["distill"]["history"][0])
    assert "dkd loss (beta=4.0, warmup=0.5)" in (out / "report.md").read_text()
    assert "teacher outputs cached" in (out / "edgekd.log").read_text()


def _digit_pngs(d: Path, images: np.ndarray) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        arr = (np.kron(img, np.ones((4, 4))) * 255 / 16).astype(np.uint8)  # 8x8 -> 32x32
        Image.fromarray(np.stack([arr] * 3, axis=-1)).save(d / f"{i:04d}.png")


def test_label_free_folder_trains_on_teacher_outputs(digits_teacher, tmp_path):
    from sklearn.datasets import load_digits

    images = load_digits().images
    _digit_pngs(tmp_path / "unlabeled/train", images[:240])
    _digit_pngs(tmp_path / "unlabeled/val", images[1700:1740])
    out = tmp_path / "run"
    proc = run_cli(
        "compress", str(digits_teacher), "--data", str(tmp_path / "unlabeled"),
        "--out", str(out), "--kd-loss", "fa", "--kd-args", "fast=true", *QUICK,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "report.json").read_text())
    assert r["data"]["labeled"] is False and r["data"]["num_classes"] == 10
    assert "agreement with the teacher" in r["data"]["accuracy_metric"]
    # here val/ has images but no class folders: the per-epoch figure is named for what it is
    assert (
        "per-epoch val figure: val agreement with the teacher" in (out / "edgekd.log").read_text()
    )
    assert r["teacher"]["accuracy"] == pytest.approx(100.0)  # the teacher agrees with itself
    hist = r["distill"]["history"][0]
    assert "loss_ce" not in hist and {"loss_kd", "loss_fa"} <= set(hist)
    assert r["distill"]["layers"] == {"student": "blocks.3", "teacher": "layer3"}


@pytest.mark.parametrize(
    "extra,needles",
    [
        (["--kd-loss", "dkdd"], ["unknown KD loss", "'dkdd'", "dkd", "edgekd losses"]),
        (["--kd-loss", "dkd", "--kd-args", "betta=2"], ["no argument 'betta'", "beta"]),
        (["--kd-loss", "dkd", "--kd-args", "beta=high"], ["bad value for beta", "float"]),
        (["--kd-loss", "dkd", "--kd-args", "beta"], ["bad --kd-args entry", "key=value"]),
        (["--kd-loss", "ttm", "--temperature", "2"], ["--temperature does not apply", "ttm"]),
        (["--kd-loss", "akl", "--kd-args", "mu=1.5"], ["bad arguments for KD loss", "mu"]),
        (["--teacher-cache", "ram"], ["--teacher-cache", "'ram'"]),
        (["--optimizer", "lion"], ["--optimizer", "'lion'"]),
        (["--ema", "1.5"], ["--ema", "1.5"]),
        (["--kd-augment", "cutmix"], ["--kd-augment", "'cutmix'"]),
        (["--ema", "0.99", "--weight-average", "0.1"], ["both average the weights"]),
        (["--weight-average", "1.0"], ["--weight-average", "1.0"]),
        (["--qat-kd-loss", "qfdd"], ["unknown KD loss", "'qfdd'"]),
        (["--kd-loss", "ofa", "--kd-args", "stages=5"], ["stages must be numbers 1-4"]),
    ],
)
def test_bad_distillation_options_are_one_line(digits_teacher, tmp_path, extra, needles):
    """In typer's runner (the real entry point's one-line errors: tests/cli/test_e2e.py)."""
    from tests.cli.test_cli_runner import invoke, one_line

    out = tmp_path / "run"
    one_line(invoke("compress", str(digits_teacher), "--out", str(out), *extra), *needles)
    assert not out.exists()  # refused before the run directory was touched


def test_the_epoch_line_names_the_val_metric(capsys):
    from edgekd.cli.progress import RichReporter

    rep = RichReporter(quiet=False, interactive=False)
    record = {"epoch": 1, "loss_kd": 0.5, "val_acc": 10.0, "seconds": 1.0}
    rep.epoch_end("distill", record)
    rep.val_metric("val agreement with the teacher (the val images have no labels)")
    rep.epoch_end("distill", record)
    err = capsys.readouterr().err
    assert "val top-1 10.00%" in err  # labelled data
    assert "val agreement with the teacher (the val images have no labels) 10.00%" in err
