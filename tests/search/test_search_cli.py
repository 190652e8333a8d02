"""`edgekd search` through the real CLI: budget filter, ranking, candidates.json, Pareto plot."""

from __future__ import annotations

import json

from tests.conftest import assert_one_line_error, run_cli


def test_search_ranks_within_the_budget(digits_teacher, tmp_path):
    proc = run_cli(
        "search", str(digits_teacher), "--target", "jetson-orin-nano-8gb",
        "--latency-budget-ms", "0.5", "--candidate", "lcnet_050", "--candidate",
        "mobilenetv3_small_050", "--candidate", "resnet18", "--batch-size", "16",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "search/candidates.json").read_text())
    by = {c["name"]: c for c in r["candidates"]}
    assert not by["resnet18"]["within_budget"] and not by["resnet18"]["scores"]  # > 0.5 ms
    fit = [c for c in r["candidates"] if c["within_budget"]]
    assert {c["name"] for c in fit} == {"lcnet_050", "mobilenetv3_small_050"}
    assert fit[0]["scores"]["diswot"] >= fit[1]["scores"]["diswot"]  # ranked by DisWOT
    for c in fit:
        assert c["latency_ms"] <= 0.5 and c["latency_measured"] is False  # predicted
        assert set(c["scores"]) >= {"diswot", "naswot", "synflow", "gradnorm", "params"}
    assert r["chosen"] == fit[0]["name"] and r["chosen"] in proc.stdout
    assert r["diswot_reference"].startswith("resnet18 at random init, 4 inits x 3 batches")
    assert "diswot: against resnet18 at random init" in proc.stdout
    assert (tmp_path / "search/pareto.png").stat().st_size > 1000


def test_search_with_nothing_in_budget_is_one_line(digits_teacher, tmp_path):
    proc = run_cli("search", str(digits_teacher), "--target", "jetson-orin-nano-8gb",
                   "--latency-budget-ms", "0.0001", "--candidate", "resnet18",
                   "--out", str(tmp_path))  # fmt: skip
    assert_one_line_error(proc, "no candidate meets the latency budget")


def test_unknown_family_is_one_line(digits_teacher, tmp_path):
    proc = run_cli("search", str(digits_teacher), "--family", "transformerz", "--out",
                   str(tmp_path))  # fmt: skip
    assert_one_line_error(proc, "unknown model family", "transformerz", "mobilenetv3")


def test_compress_student_search_uses_the_search(digits_teacher, tmp_path, monkeypatch):
    import edgekd.search.space as space
    from edgekd.config import Budgets, CompressConfig
    from edgekd.pipeline.compress import compress

    monkeypatch.setattr(space, "candidates", lambda *a, **k: ["lcnet_050", "resnet18"])
    budgets = Budgets(latency_ms=0.5, max_accuracy_drop=100)
    cfg = CompressConfig(
        teacher=str(digits_teacher), target="jetson-orin-nano-8gb", student="search",
        out=tmp_path / "run", epochs=1, qat_epochs=0, calib_size=32, budgets=budgets,
    )  # fmt: skip
    result = compress(cfg, budgets=budgets)
    assert result.report["student"]["name"] == "lcnet_050"  # resnet18 is over 0.5 ms
    assert "student search -> lcnet_050" in (tmp_path / "run/edgekd.log").read_text()


def test_few_shot_spreads_over_two_ranks(digits_teacher, tmp_path, monkeypatch):
    # one candidate per rank under torchrun; the accuracies are those of one process
    # (each run is alone and seeded; both runs use 1 thread per process)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    common = ["search", str(digits_teacher), "--candidate", "lcnet_050", "--candidate",
              "mobilenetv3_small_050", "--batch-size", "16", "--few-shot-k", "2",
              "--few-shot-epochs", "1", "--device", "cpu"]  # fmt: skip
    runs = {}
    for n in (1, 2):
        out = tmp_path / f"n{n}"
        proc = run_cli(*common, "--out", str(out), "--nproc-per-node", str(n), "--verbose")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.count("chosen:") == 1, proc.stdout  # only rank 0 prints
        r = json.loads((out / "search/candidates.json").read_text())
        runs[n] = {c["name"]: c["few_shot_acc"] for c in r["candidates"]}
        if n == 2:
            assert "(rank 0)" in proc.stderr and "(rank 1)" in proc.stderr
    assert None not in runs[2].values()
    assert runs[2] == runs[1]


def test_nproc_inside_torchrun_is_one_line_for_search(digits_teacher, tmp_path, monkeypatch):
    for k, v in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(k, v)
    proc = run_cli("search", str(digits_teacher), "--nproc-per-node", "2", "--out",
                   str(tmp_path))  # fmt: skip
    assert_one_line_error(proc, "already running under torchrun")


def test_compress_auto_respects_the_latency_budget(digits_teacher, tmp_path, monkeypatch):
    import edgekd.models.students as students
    from edgekd.config import Budgets, CompressConfig
    from edgekd.latency.cost import predict_latency
    from edgekd.pipeline.compress import compress
    from edgekd.targets import get_target

    monkeypatch.setattr(students, "AUTO_MAX_PARAM_FRACTION", 1.0)  # resnet18 is under the cap
    budgets = Budgets(latency_ms=0.5, max_accuracy_drop=100)
    cfg = CompressConfig(
        teacher=str(digits_teacher), target="jetson-orin-nano-8gb", out=tmp_path / "run",
        epochs=1, qat_epochs=0, calib_size=32, budgets=budgets,
    )  # fmt: skip
    result = compress(cfg, budgets=budgets)
    name = result.report["student"]["name"]
    assert result.report["student"]["chosen_by"] == "auto"
    assert name != "resnet18"  # the param rule alone picks it; it is over 0.5 ms
    log = (tmp_path / "run/edgekd.log").read_text()
    assert f"student auto -> {name}" in log and "over the budget: resnet18" in log
    fp32 = predict_latency(tmp_path / "run/export/model-fp32.onnx", get_target(cfg.target))
    assert fp32.total_ms <= 0.5


def test_compress_search_confirms_with_few_shot(digits_teacher, tmp_path, monkeypatch):
    import edgekd.search.space as space
    from edgekd.config import Budgets, CompressConfig
    from edgekd.pipeline.compress import _teacher_and_data, compress
    from edgekd.search.search import few_shot

    pair = ["lcnet_050", "mobilenetv3_small_050"]
    monkeypatch.setattr(space, "candidates", lambda *a, **k: pair)
    budgets = Budgets(latency_ms=0.5, max_accuracy_drop=100)
    cfg = CompressConfig(
        teacher=str(digits_teacher), target="jetson-orin-nano-8gb", student="search",
        few_shot_k=2, few_shot_epochs=1, out=tmp_path / "run", epochs=1, qat_epochs=0,
        calib_size=32, budgets=budgets, device="cpu",
    )  # fmt: skip
    result = compress(cfg, budgets=budgets)
    teacher, data = _teacher_and_data(cfg)  # the same bundle compress trains on
    accs = few_shot(pair, teacher.module, data, 1, cfg.seed, "cpu")
    best = max(accs, key=accs.get)
    assert result.report["student"]["name"] == best
    assert result.report["student"]["chosen_by"] == "search"
    assert result.report["student"]["search"]["few_shot_acc"] == accs[best]
    log = (tmp_path / "run/edgekd.log").read_text()
    assert f"student search -> {best} (best of the top 2 by DisWOT after 1 epochs" in log
    assert f"{accs[best]:.2f}% val" in log


def test_few_shot_k_needs_student_search(digits_teacher, tmp_path):
    out = tmp_path / "x"
    proc = run_cli("compress", str(digits_teacher), "--few-shot-k", "2", "--out", str(out))
    assert_one_line_error(proc, "--few-shot-k 2", "--student search")
    assert not out.exists()


def test_diswot_reference_is_the_teachers_architecture_at_random_init(digits_teacher):
    """A checkpoint that names its timm architecture: DisWOT compares against that
    architecture at random init; a teacher without one: against the trained teacher."""
    import torch

    from edgekd.data.digits import digits_bundle
    from edgekd.models import load_teacher
    from edgekd.search.proxies.diswot import features
    from edgekd.search.search import DISWOT_BATCHES, DISWOT_INITS, diswot_reference

    loaded = load_teacher(str(digits_teacher))
    data = digits_bundle(augment=False)
    ref = diswot_reference(loaded.module, loaded.arch, data, 8, 0)
    assert ref.source.startswith("resnet18 at random init") and not ref.trained
    assert len(ref.draws) == DISWOT_INITS * DISWOT_BATCHES
    fallback = diswot_reference(loaded.module, None, data, 8, 0)
    assert fallback.trained and "trained teacher" in fallback.source
    assert "architecture is unknown" in fallback.source
    x, y = fallback.batches[0]
    f_eval, _ = features(loaded.module, x, y, None, batch_stats=False)  # eval mode
    assert torch.equal(fallback.draws[0][3], f_eval)
