"""The distillation methods that change the training run, through the real `edgekd` command:
ofa with a ViT teacher, --kd-augment mixup, --weight-average, --qat-kd-loss qfd, and Born-Again
generations. (A module of their own, so the suite's workers share the CLI runs.)"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_kd_cli import QUICK
from tests.conftest import run_cli


def test_vit_teacher_into_a_cnn_student_with_ofa_mixup_and_weight_average(tmp_path):
    # OFA taps only the student's stages: the ViT teacher (deit_tiny, 4x4 patches at 32x32)
    # gives logits; mixup makes the teacher run live on the mixed batches
    import torch

    from edgekd.models import save_checkpoint
    from edgekd.models.loading import build_timm

    torch.manual_seed(0)
    vit, _ = build_timm("deit_tiny_patch16_224", 10, {"patch_size": 8, "depth": 2}, (3, 32, 32))
    teacher = save_checkpoint(tmp_path / "vit.pt", vit, "deit_tiny_patch16_224", 10, (3, 32, 32),
                              {"patch_size": 8, "depth": 2})  # fmt: skip
    out = tmp_path / "run"
    quick = [a if a != "mobilenetv3_small_050" else "resnet10t" for a in QUICK]
    proc = run_cli(
        "compress", str(teacher), "--data", "digits", "--max-train", "256", "--out", str(out),
        "--kd-loss", "ofa", "--kd-args", "eps=1.5", "--kd-augment", "mixup",
        "--weight-average", "0.1", *quick,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "report.json").read_text())
    assert r["distill"]["loss"] == "ofa" and r["distill"]["kd_augment"] == "mixup"
    assert r["distill"]["teacher_cache"] == "live"
    assert {"loss_ce", "loss_kd", "loss_ofa"} <= set(r["distill"]["history"][0])
    log = (out / "edgekd.log").read_text()
    assert "ofa taps: student stages 1 layer1" in log and "teacher logits only" in log
    assert "runs live on the mixed images" in log
    assert "batches mixed (mixup)" in (out / "report.md").read_text()
    assert r["distill"]["weight_average"] == {"start": 0.1, "window": "uniform", "bn": "recompute"}
    assert "weights averaged uniformly from 10% of the steps" in (out / "report.md").read_text()
    assert "weight average from step 1 of 4 on (BatchNorm recompute)" in log
    assert (out / r["artifact"]["path"]).exists() or Path(r["artifact"]["path"]).exists()


def test_qat_phase_distils_the_teachers_quantized_feature_with_qfd_on_hard_batches(
    digits_teacher, tmp_path
):
    out = tmp_path / "run"
    quick = [a if a != "0" else "1" for a in QUICK]  # --qat-epochs 1
    proc = run_cli(
        "compress", str(digits_teacher), "--max-train", "160", "--out", str(out),
        "--qat-kd-loss", "qfd", "--qat-kd-args", "bits=4", "--kd-augment", "hard", *quick,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "report.json").read_text())
    assert {"loss_kd", "loss_ce"} <= set(r["distill"]["history"][0])  # the float phase: kd
    assert {"loss_qfd", "loss_ce"} <= set(r["quantization"]["history"][0])
    log = (out / "edgekd.log").read_text()
    assert "qfd: the teacher's feature is quantized to 4 bits on [0, " in log
    # HARD in both phases: the teacher live, the kept share in every epoch's record
    assert r["distill"]["kd_augment"] == "hard" and r["distill"]["teacher_cache"] == "live"
    for phase in (r["distill"], r["quantization"]):
        assert all(0 <= h["hard_kept"] <= 1 for h in phase["history"])
    assert "runs live on the hard-augmented images" in log
    assert "batches hard-augmented (HARD-affine: " in (out / "report.md").read_text()
    bad = run_cli("compress", str(digits_teacher), "--out", str(tmp_path / "bad"),
                  "--qat-kd-args", "bits=4", *quick)  # fmt: skip
    assert bad.returncode == 1 and "--qat-kd-args needs --qat-kd-loss" in bad.stderr


def test_born_again_generations_of_the_teachers_architecture(tmp_path):
    # Furlanello et al. 2018: --student same --generations 2: generation 2 learns from 1
    import torch

    from edgekd.models import create_timm, save_checkpoint

    torch.manual_seed(0)
    teacher = save_checkpoint(tmp_path / "t.pt", create_timm("resnet10t", 10), "resnet10t", 10,
                              (3, 32, 32))  # fmt: skip
    out = tmp_path / "run"
    quick = [a if a != "mobilenetv3_small_050" else "same" for a in QUICK]
    proc = run_cli("compress", str(teacher), "--data", "digits", "--max-train", "200",
                   "--out", str(out), "--generations", "3", "--born-again-teacher", "ensemble",
                   *quick)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "report.json").read_text())
    assert r["student"]["name"] == "resnet10t"
    gens = r["distill"]["generations"]
    assert [g["generation"] for g in gens] == [1, 2, 3]
    assert [g["teacher"] for g in gens] == ["the teacher", "generation 1",
                                            "the ensemble of generations 1-2"]  # fmt: skip
    log = (out / "edgekd.log").read_text()
    assert "Born-Again generation 1/3: resnet10t taught by the teacher" in log
    assert "Born-Again generation 2/3: resnet10t taught by generation 1 (best val" in log
    assert "Born-Again generation 3/3: resnet10t taught by the ensemble of generations 1-2" in log
    for f in ("gen1_best.pt", "gen2_best.pt", "best.pt"):
        assert (out / "distill" / f).exists(), f
    bad = run_cli("compress", str(teacher), "--data", "digits", "--out", str(tmp_path / "b"),
                  "--generations", "2", "--student", "auto", "--quiet")  # fmt: skip
    assert bad.returncode == 1 and "distils one architecture again and again" in bad.stderr
