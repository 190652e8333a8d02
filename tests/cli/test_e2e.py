"""The real `edgekd` command in a subprocess, end to end on digits with a tiny budget."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import onnx
import pytest

from edgekd._io import sha256_file
from edgekd.targets import get_target
from tests.conftest import assert_one_line_error, run_cli
from tests.data.test_folder import make_folder

FAST = [
    "--max-train",  # a stratified 500 of digits' 1437 training images
    "500",
    "--epochs",
    "1",
    "--qat-epochs",
    "1",
    "--latency-warmup",
    "5",
    "--latency-iters",
    "20",
    "--calib-size",
    "64",
    "--quiet",
]


@pytest.fixture(scope="module")
def demo_run(digits_teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "run"
    proc = run_cli(
        "compress",
        str(digits_teacher),
        "--data",
        "digits",
        "--target",
        "host",
        "--out",
        str(out),
        "--max-accuracy-drop",
        "100",
        "--ci",
        *FAST,
    )
    return out, proc


def test_compress_exit_0_and_prints_paths(demo_run):
    out, proc = demo_run
    assert proc.returncode == 0, proc.stderr
    assert f"report: {out / 'report.json'}" in proc.stdout
    assert "artifact: " in proc.stdout and "verdict: PASS" in proc.stdout
    assert f"junit: {out / 'junit.xml'}" in proc.stdout  # --ci: compact summary + junit
    assert proc.stderr.strip() == ""  # --quiet: no progress, no third-party log lines
    for name in ("report.html", "junit.xml", "edgekd.log"):
        assert (out / name).stat().st_size > 0
    log = (out / "edgekd.log").read_text()
    assert "stage distill: done" in log and "distill epoch 1:" in log


def test_no_stage_is_silent_for_more_than_ten_seconds(demo_run):
    """Issue 25: every line of edgekd.log is timestamped; between two of them, from the first
    line to the last, never more than 10 s (the heartbeat follows 6 s of silence)."""
    out, _ = demo_run
    lines = (out / "edgekd.log").read_text().splitlines()
    stamps = [datetime.strptime(ln[:19], "%Y-%m-%d %H:%M:%S") for ln in lines]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    worst = max(range(len(gaps)), key=gaps.__getitem__)
    assert gaps[worst] <= 10, f"{gaps[worst]} s silent before: {lines[worst + 1]}"
    log = "\n".join(lines)
    for stage in ("search", "teacher", "distill", "quantize", "export", "build", "validate"):
        assert f"stage {stage}: start" in log and f"stage {stage}: done" in log
    # the search's counted lines: each candidate costed and scored, each few-shot epoch
    assert re.search(r"search: candidate 1/2: \S+: [\d.]+ ms measured, diswot ", log)
    assert re.search(r"few-shot KD 4/4 epochs: \S+ \(2 of 2\) epoch 2/2, val ", log)


def test_report_holds_accuracies_latencies_sizes_and_artifact(demo_run):
    out, _ = demo_run
    r = json.loads((out / "report.json").read_text())
    assert r["target"] == "host"
    # --student auto with no latency budget: the search space's models with at most 1/16 of
    # resnet18's 11,181,642 params (mobilenetv3_small_050 578,474; lcnet_050 612,666; the
    # next smallest, tinynet_e, has 774,782), both distilled briefly, the better one kept
    pick = r["student"]["search"]
    assert r["student"]["chosen_by"] == "auto"
    assert set(pick["few_shot"]) == {"mobilenetv3_small_050", "lcnet_050"}
    if pick["few_shot_undecided"] is None:
        best = max(pick["few_shot"], key=pick["few_shot"].get)
        assert r["student"]["name"] == pick["name"] == best
    else:  # the few-shot runs ended at chance or tied: DisWOT's best (candidates.json's first)
        assert "the proxy ranking decides" in pick["how"]
    cands = json.loads((out / "search/candidates.json").read_text())
    assert cands["chosen"] == pick["name"] and cands["latency_budget_ms"] is None
    dropped = {c["name"]: c for c in cands["candidates"] if c["dropped"]}
    assert dropped.pop("resnet18")["dropped"] == "the teacher's own architecture"
    assert dropped and all("over the size cap" in c["dropped"] for c in dropped.values())
    assert all(c["params"] > 11181642 // 16 for c in dropped.values())
    for m in [r["teacher"], r["artifact"], *r["variants"].values()]:
        assert 0 <= m["accuracy"] <= 100
        lat = m["latency"]
        assert 0 < lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
        assert lat["threads"] == 1 and lat["iters"] == 20 and lat["warmup"] == 5
        assert m["size_mb"] > 0
    assert set(r["variants"]) == {"fp32", "int8"}
    art = out / r["artifact"]["path"]
    assert art.exists() and sha256_file(art) == r["artifact"]["sha256"]
    onnx.checker.check_model(str(art))
    assert r["parity"]["int8-ort"]["samples"] == 360
    # an ONNX Runtime target trains ORT's own Q/DQ graph and ships it as trained: no Model
    # Optimizer export, nothing re-calibrated, every Conv/Gemm an integer kernel
    assert r["quantization"]["graph"] == "ort" and r["parity"]["int8-ort"]["trained_graph"]
    assert "int8" not in r["parity"] and "int8" not in r["export"]["float_conv_gemm_left"]
    # the Conv/Gemm ORT leaves in float are exactly those of the blocks the per-block choice
    # put in float (edgekd.quant.precision), every other one an integer kernel
    prec = r["export"]["precision"]
    float_layers = sum(len(b["layers"]) for b in prec["blocks"] if b["precision"] == "fp32")
    assert prec["kept"] in ("int8", "mixed") and (float_layers > 0) == (prec["kept"] == "mixed")
    assert r["export"]["float_conv_gemm_left"]["int8-ort"] == float_layers
    assert r["variants"]["int8"]["float_conv_gemm_left"] == float_layers
    assert r["variants"]["fp32"]["parity"] >= 99.0
    # which weights each artifact holds (issue 25 item 9): the float ones the KD student, the
    # INT8 ones whichever of PTQ and QAT the quantize stage kept
    kept = r["quantization"]["kept"]
    assert r["variants"]["fp32"]["weights"].startswith("KD: the distilled student")
    assert r["variants"]["int8"]["weights"].startswith("QAT" if kept.startswith("qat") else "PTQ")
    assert r["artifact"]["weights"] == r["variants"][r["artifact"]["precision"]]["weights"]
    assert "**Weights**: fp32: KD" in (out / "report.md").read_text()
    assert r["variants"]["int8"]["parity"] == r["parity"]["int8-ort"]["top1_agreement"]
    assert r["verdict"]["passed"] and r["verdict"]["exit_code"] == 0
    md = (out / "report.md").read_text()
    assert md.startswith("# edgekd report")
    assert f"**Why this student**: `{pick['name']}` by the student search (--student auto)" in md


def test_run_directory_and_manifest(demo_run):
    out, _ = demo_run
    for rel in [
        "search/candidates.json",
        "search/pareto.png",
        "distill/best.pt",
        "distill/last.pt",
        "distill/history.json",
        "distill/qat_best.pt",
        "export/model-fp32.onnx",
        "export/teacher.onnx",
        "export/model-ort-int8.onnx",
        "build/model.ort.onnx",
        "validate/metrics.json",
    ]:
        assert (out / rel).is_file(), rel
    m = json.loads((out / "manifest.json").read_text())
    names = [s["name"] for s in m["stages"]]
    assert names == ["search", "teacher", "distill", "quantize", "export", "build", "validate"]
    for s in m["stages"]:
        assert s["status"] == "finished" and s["wall_s"] >= 0
        for rel, digest in s["outputs"].items():
            assert sha256_file(out / rel) == digest
    assert m["run"]["seed"] == 0 and "torch" in m["run"]["versions"]
    assert not (out / "export/model.onnx").exists()  # Model Optimizer's graph: TensorRT only
    # the ORT INT8 export is opset 17 with Q/DQ pairs and no integer-op forms
    q = onnx.load(str(out / "export/model-ort-int8.onnx"))
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "QLinearConv" not in ops
    assert next(o.version for o in q.opset_import if o.domain in ("", "ai.onnx")) == 17
    assert not list(out.rglob("*.tmp"))


def test_rerun_without_resume_refuses(demo_run, digits_teacher):
    out, _ = demo_run
    proc = run_cli("compress", str(digits_teacher), "--out", str(out), *FAST)
    assert_one_line_error(proc, "already holds a run", "--resume")


def test_resume_reuses_every_stage_then_budget_miss_exits_2(demo_run, digits_teacher):
    out, _ = demo_run

    def resume(*extra: str):
        return run_cli(
            "compress",
            str(digits_teacher),
            "--out",
            str(out),
            "--resume",
            "--max-accuracy-drop",
            "100",
            *extra,
            *FAST,
        )

    before = json.loads((out / "report.json").read_text())
    proc = resume()
    assert proc.returncode == 0, proc.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["run"]["stages_ran"] == [] and len(m["run"]["stages_reused"]) == 7
    after = json.loads((out / "report.json").read_text())
    assert after["artifact"]["sha256"] == before["artifact"]["sha256"]
    assert after["student"] == before["student"]  # the search's pick is kept, not redone
    # an impossible size budget: only validation re-runs, and the run exits 2 (a new latency
    # budget would re-run the auto student search, which it steers; a new accuracy budget the
    # quantize stage, which keeps PTQ when it meets the budget)
    proc = resume("--max-model-mb", "0.001")
    assert proc.returncode == 2, proc.stderr
    assert "BUDGET MISSED" in proc.stdout and "size" in proc.stdout
    m = json.loads((out / "manifest.json").read_text())
    assert m["run"]["stages_ran"] == ["validate"]
    r = json.loads((out / "report.json").read_text())
    gate = next(g for g in r["verdict"]["gates"] if g["name"] == "size")
    assert not gate["passed"] and r["verdict"]["exit_code"] == 2


def test_image_folder_timm_teacher_explicit_student_ptq_only(tmp_path):
    data = make_folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=6, size=20)
    out = tmp_path / "run"
    proc = run_cli(
        "compress",
        "timm:resnet10t",
        "--data",
        str(data),
        "--input-shape",
        "3,32,32",
        "--student",
        "lcnet_050",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--qat-epochs",
        "0",
        "--max-accuracy-drop",
        "100",
        "--latency-iters",
        "10",
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads((out / "report.json").read_text())
    assert r["student"]["name"] == "lcnet_050" and r["data"]["num_classes"] == 3
    assert (out / "distill/ptq.pt").exists() and "qat_val_acc" not in r["quantization"]
    assert r["quantization"]["kept"] == "ptq"
    # a random teacher on random images: its top-1 is a guess's, and the first lines say so
    log = (out / "edgekd.log").read_text()
    assert "warning: the teacher scores" in log and "unless --normalize says otherwise" in log


def test_onnx_teacher_on_an_image_folder_with_student_auto(tmp_path):
    """Issue 25 item 11: a teacher held only as ONNX (fixed batch 1, softmax head, 32x32, no
    --input-shape), --student auto: searched with DisWOT on its outputs, distilled from its
    cached outputs, validated against the file itself."""
    import timm
    import torch

    torch.manual_seed(0)
    net = timm.create_model("resnet10t", num_classes=3, pretrained=False).eval()
    head = torch.nn.Sequential(net, torch.nn.Softmax(1)).eval()
    teacher = tmp_path / "teacher.onnx"
    torch.onnx.export(head, (torch.zeros(1, 3, 32, 32),), str(teacher), dynamo=False)
    data = make_folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=6, size=32)
    out = tmp_path / "run"
    proc = run_cli("compress", str(teacher), "--data", str(data), "--out", str(out),
                   "--epochs", "1", "--qat-epochs", "0", "--few-shot-epochs", "1",
                   "--max-accuracy-drop", "100", "--min-parity", "0", "--latency-iters", "10",
                   "--no-augment", "--ci")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((out / "report.json").read_text())
    stages = json.loads((out / "manifest.json").read_text())["stages"]
    assert next(s for s in stages if s["name"] == "teacher")["info"]["kind"] == "onnx"
    assert r["data"]["num_classes"] == 3
    assert r["student"]["chosen_by"] == "auto"
    assert "outputs only (ONNX" in r["student"]["search"]["diswot_reference"]
    # the reference is the user's file, byte for byte, and the teacher's accuracy is its own
    assert sha256_file(out / "export/teacher.onnx") == sha256_file(teacher)
    log = (out / "edgekd.log").read_text()
    assert "input 3x32x32 (from the teacher file (onnx))" in log
    assert "the ONNX teacher outputs probabilities (a softmax)" in log
    assert "teacher outputs cached (memory)" in log
    assert r["verdict"]["exit_code"] == 0


@pytest.mark.parametrize(
    "args,needles",
    [
        (["compress", "--bogus-flag"], ["no such option", "--bogus-flag"]),
        (["compress"], ["no teacher given"]),
        (["compress", "/no/such/teacher.pt"], ["teacher file not found"]),
        (["compress", "timm:resnet10t", "--target", "jetson-nanoo"], ["unknown target"]),
    ],
)
def test_real_entry_point_bad_input_one_line(args, needles):
    assert_one_line_error(run_cli(*args), *needles)


def test_python_dash_m_and_console_script_agree():
    exe = shutil.which("edgekd", path=str(Path(sys.executable).parent))
    assert exe, "console script not installed"
    import subprocess

    out = subprocess.run([exe, "version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == run_cli("version").stdout.strip()


def test_jetson_target_predicts_latency_and_hands_over_onnx(digits_teacher, tmp_path):
    out = tmp_path / "jet"
    proc = run_cli(
        "compress",
        str(digits_teacher),
        "--target",
        "jetson",
        "--out",
        str(out),
        "--max-accuracy-drop",
        "100",
        # a given student: the search under a latency budget has its own test
        # (tests/search/test_search_cli.py); here the TensorRT hand-over is under test
        "--student",
        "mobilenetv3_small_050",
        *FAST,
    )
    assert proc.returncode == 0, proc.stderr
    assert "PREDICTED" in proc.stdout
    r = json.loads((out / "report.json").read_text())
    assert r["target"] == "jetson-orin-nano-8gb" and r["runtime"] == "tensorrt"
    assert set(r["variants"]) == {"fp32", "fp16", "int8"}
    assert "predicted" in r["latency_source"] and "not measured" in r["latency_source"]
    band = get_target("jetson").prediction_range
    for m in [r["teacher"], *r["variants"].values()]:
        assert m["latency"]["measured"] is False and m["latency"]["p90_ms"] > 0
        lo, hi = m["latency"]["range_ms"]  # the profile's held-out range around it
        assert (lo, hi) == pytest.approx(band.of(m["latency"]["p90_ms"]))
    assert "PREDICTED, range " in proc.stdout
    # engines are built on the device: the shipped file is the ONNX for the chosen precision
    assert r["artifact"]["path"] == "build/model.onnx"
    onnx.checker.check_model(str(out / "build/model.onnx"))
    # an FP16 ONNX for the strongly typed FP16 build: same predictions, predicted faster
    v = r["variants"]
    assert v["fp16"]["path"] == "export/model-fp16.onnx"
    agree = r["parity"]["fp16"]["top1_agreement"]
    assert agree >= 99.0
    # exact: two models' accuracies differ by at most the share of images they disagree on
    assert abs(v["fp16"]["accuracy"] - v["fp32"]["accuracy"]) <= 100 - agree + 1e-9
    assert v["fp16"]["latency"]["p90_ms"] < v["fp32"]["latency"]["p90_ms"]
    assert r["teacher"]["precision"] == "fp16"
    # every ONNX exported for the Jetson passes the lint for its TensorRT version
    lint_errors = {k: v["errors"] for k, v in r["export"]["lint"].items()}
    assert lint_errors == {"fp32": 0, "fp16": 0, "int8": 0}
    # and has no float island TensorRT would split the INT8 engine at: MobileNetV3's 7
    # residual Adds get their skip input quantized, its timm Linear classifier is quantized
    assert r["export"]["lint"]["int8"]["warnings"] == 0
    res = r["quantization"]["residual_adds"]
    assert (res["adds"], res["quantized"], res["left_float"]) == (7, 7, [])
    assert "residual Adds: 7 of 7 quantized" in run_cli("quant-report", str(out)).stdout
    # the per-block choice is costed by the Orin's cost model (no layer table here: the
    # roofline never prices INT8 above float, so every block stays INT8)
    prec = r["export"]["precision"]
    assert prec["how"] == r["target"] and prec["kept"] == "int8"
    assert all(b["precision"] == "int8" for b in prec["blocks"] if "accuracy" not in b["why"])
    # the build stage hands over a script that builds each engine with the device's trtexec
    script = out / "build/build_engine.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "--onnx=../export/model.onnx" in text and "--stronglyTyped" in text  # TensorRT 10.3
    assert "--onnx=../export/model-fp16.onnx" in text
    assert "--saveEngine=model-int8.engine" in text and "--timingCacheFile=timing.cache" in text
    assert "--minShapes=input:1x3x32x32" in text
    metrics = json.loads((out / "validate/metrics.json").read_text())
    assert (
        metrics["build_flags"]
        # TensorRT 10.3: the INT8 Q/DQ and the FP16 ONNX both build strongly typed
        == {"int8": "--stronglyTyped", "fp16": "--stronglyTyped", "fp32": ""}[
            r["artifact"]["precision"]
        ]
    )


def test_quant_report_shows_the_ranking_of_a_run(demo_run, tmp_path):
    out, _ = demo_run
    proc = run_cli("quant-report", str(out), "--json", "--top", "3")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    r = json.loads((out / "report.json").read_text())
    assert s["sensitivity"] == r["quantization"]["sensitivity"][:3]
    assert s["sensitivity_layers"] == len(r["quantization"]["sensitivity"])
    assert set(s["parity"]) == set(r["parity"]) and s["method"] == "max"
    # an ONNX Runtime target: its layout quantizes the Adds itself, no residual quantizers
    assert r["quantization"]["residual_adds"] is None and s["residual_line"] is None
    text = run_cli("quant-report", str(out)).stdout
    assert "sensitivity (top 20 of" in text and "parity int8" in text
    gate = next(g for g in r["verdict"]["gates"] if g["name"] == "parity")
    assert s["parity_gate"] == gate and gate["limit"] == 95.0  # the default gate (item 8)
    shipped = r["artifact"]["precision"]
    assert (f"parity gate (--min-parity 95): the shipped {shipped} artifact agrees "
            f"{gate['value']:.2f}% with its torch model: passed") in text  # fmt: skip
    assert_one_line_error(run_cli("quant-report", str(tmp_path)), "no report.json")
