"""`edgekd search` through the real CLI: budget filter, ranking, candidates.json, Pareto plot."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import assert_one_line_error, run_cli

# the Orin Nano profile as it was before the evidence fit: these tests pin budgets to its
# predictions, which must not move when the shipped profile is refitted
FIXED = str(Path(__file__).parent / "data/orin-nano-fixed.yaml")


def test_search_ranks_within_the_budget(digits_teacher, tmp_path):
    proc = run_cli(
        "search", str(digits_teacher), "--target", FIXED,
        "--latency-budget-ms", "0.5", "--candidate", "lcnet_050", "--candidate",
        "mobilenetv3_small_050", "--candidate", "resnet14t", "--candidate", "resnet18",
        "--batch-size", "16",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads((tmp_path / "search/candidates.json").read_text())
    by = {c["name"]: c for c in r["candidates"]}
    assert not by["resnet14t"]["within_budget"] and not by["resnet14t"]["scores"]  # > 0.5 ms
    assert by["resnet14t"]["dropped"].startswith("over the latency budget")
    assert by["resnet18"]["dropped"] == "the teacher's own architecture"  # no student
    fit = [c for c in r["candidates"] if c["within_budget"]]
    assert {c["name"] for c in fit} == {"lcnet_050", "mobilenetv3_small_050"}
    assert fit[0]["scores"]["diswot"] >= fit[1]["scores"]["diswot"]  # ranked by DisWOT
    for c in fit:
        assert c["latency_ms"] <= 0.5 and c["latency_measured"] is False  # predicted
        assert set(c["scores"]) >= {"diswot", "naswot", "synflow", "gradnorm", "params",
                                    "diswot_official", "sp", "ickd"}  # fmt: skip
        official = c["scores"]
        assert official["diswot_official"] == pytest.approx(-(official["sp"] + official["ickd"]))
    assert r["chosen"] == fit[0]["name"] and r["chosen"] in proc.stdout
    assert r["diswot_reference"].startswith("resnet18 at random init, 4 inits x 3 batches")
    assert "diswot: against resnet18 at random init" in proc.stdout
    assert (tmp_path / "search/pareto.png").stat().st_size > 1000


def test_search_with_nothing_in_budget_is_one_line(digits_teacher, tmp_path):
    args = ["search", str(digits_teacher), "--target", FIXED,
            "--latency-budget-ms", "0.0001", "--candidate", "resnet14t", "--out", str(tmp_path)]
    assert_one_line_error(run_cli(*args, "--quiet"), "no candidate meets the latency budget")
    # without --quiet the search's progress comes first, then the same one error line
    proc = run_cli(*args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert lines[-1].startswith("error: no candidate meets the latency budget")
    assert re.match(r"search: candidate 1/1: resnet14t: [\d.]+ ms predicted > budget, dropped",
                    lines[0])  # fmt: skip


def test_rank_by_the_official_diswot(digits_teacher, tmp_path):
    proc = run_cli(
        "search", str(digits_teacher), "--target", FIXED, "--rank-by", "diswot-official",
        "--candidate", "lcnet_050", "--candidate", "mobilenetv3_small_050", "--candidate",
        "lcnet_075", "--batch-size", "16", "--out", str(tmp_path), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fit = json.loads((tmp_path / "search/candidates.json").read_text())["candidates"]
    official = [c["scores"]["diswot_official"] for c in fit]
    assert official == sorted(official, reverse=True) and len(fit) == 3
    rows = [ln.split() for ln in proc.stdout.splitlines()[1:4]]
    assert [r[1] for r in rows] == [c["name"] for c in fit]
    assert [float(r[5]) for r in rows] == pytest.approx(official, abs=1e-4)  # "official"


def test_unknown_rank_by_is_one_line(digits_teacher, tmp_path):
    proc = run_cli("search", str(digits_teacher), "--rank-by", "zen", "--out", str(tmp_path))
    assert_one_line_error(proc, "unknown --rank-by", "zen", "diswot-official")


def test_unknown_family_is_one_line(digits_teacher, tmp_path):
    proc = run_cli("search", str(digits_teacher), "--family", "transformerz", "--out",
                   str(tmp_path))  # fmt: skip
    assert_one_line_error(proc, "unknown model family", "transformerz", "mobilenetv3")


def test_compress_student_search_uses_the_search(digits_teacher, tmp_path, monkeypatch):
    import edgekd.search.space as space
    from edgekd.config import Budgets, CompressConfig
    from edgekd.pipeline.compress import compress

    monkeypatch.setattr(space, "candidates", lambda *a, **k: ["lcnet_050", "resnet14t"])
    budgets = Budgets(latency_ms=0.5, max_accuracy_drop=100)
    cfg = CompressConfig(
        teacher=str(digits_teacher), target=FIXED, student="search",
        out=tmp_path / "run", epochs=1, qat_epochs=0, calib_size=32, budgets=budgets,
        max_train=400,  # a stratified 400 of 1437: the pick, not the training, is tested
    )  # fmt: skip
    result = compress(cfg, budgets=budgets)
    assert result.report["student"]["name"] == "lcnet_050"  # resnet14t is over 0.5 ms
    assert "student search -> lcnet_050" in (tmp_path / "run/edgekd.log").read_text()


def test_few_shot_spreads_over_two_ranks(digits_teacher, tmp_path, monkeypatch):
    # one candidate per rank under torchrun; the accuracies are those of one process
    # (each run is alone and seeded; both runs use 1 thread per process)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    common = ["search", str(digits_teacher), "--candidate", "lcnet_050", "--candidate",
              "mobilenetv3_small_050", "--batch-size", "64", "--few-shot-k", "2",
              "--few-shot-epochs", "1", "--device", "cpu", "--max-train", "200"]  # fmt: skip
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


def expected_pick(accs: dict, data, run) -> tuple[str, str]:
    """The student the search must pick from these few-shot accuracies, and the log's reason:
    the best one, unless they cannot decide (the best at chance, or a tie), when the top
    DisWOT score of the nominees does (`search.undecided`). One epoch of KD from random init
    on digits ends near chance on some machines, so both branches are real."""
    from edgekd.models.evaluate import chance_level

    top = max(accs.values())
    at_chance = top <= chance_level(data.num_classes, len(data.val))
    if not at_chance and list(accs.values()).count(top) == 1:
        best = max(accs, key=accs.get)
        return best, f"{best} (best val {accs[best]:.2f}% after 1 epoch(s)"
    cands = json.loads((run / "search/candidates.json").read_text())["candidates"]
    pool = [c for c in cands if c["name"] in accs and (at_chance or accs[c["name"]] == top)]
    pick = max(pool, key=lambda c: c["scores"]["diswot"])["name"]
    return pick, "no better than a guess, so the proxy ranking decides"


def test_nproc_inside_torchrun_is_one_line_for_search(digits_teacher, tmp_path, monkeypatch):
    for k, v in {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(k, v)
    proc = run_cli("search", str(digits_teacher), "--nproc-per-node", "2", "--out",
                   str(tmp_path))  # fmt: skip
    assert_one_line_error(proc, "already running under torchrun")


def test_compress_auto_searches_within_the_budget_and_resume_keeps_the_pick(
    digits_teacher, tmp_path, monkeypatch
):
    import edgekd.search.space as space
    from edgekd.config import Budgets, CompressConfig
    from edgekd.inputs import InputSpec, load_inputs
    from edgekd.latency.cost import predict_latency
    from edgekd.pipeline.compress import compress
    from edgekd.search.search import few_shot
    from edgekd.targets import get_target

    names = ["lcnet_050", "mobilenetv3_small_050", "resnet10t", "resnet18"]
    monkeypatch.setattr(space, "candidates", lambda *a, **k: names)
    budgets = Budgets(latency_ms=0.5, max_accuracy_drop=100)
    cfg = CompressConfig(
        teacher=str(digits_teacher), target=FIXED, out=tmp_path / "run",
        epochs=1, qat_epochs=0, calib_size=32, budgets=budgets, few_shot_epochs=1,
        device="cpu", max_train=400,
    )  # fmt: skip
    result = compress(cfg, budgets=budgets)
    student = result.report["student"]
    assert student["chosen_by"] == "auto"
    cands = json.loads((tmp_path / "run/search/candidates.json").read_text())
    by = {c["name"]: c for c in cands["candidates"]}
    # a latency budget and no size cap: resnet10t is predicted over 0.5 ms; resnet18 is the
    # teacher's own architecture
    assert by["resnet10t"]["dropped"].startswith("over the latency budget")
    assert by["resnet10t"]["latency_ms"] > 0.5
    assert by["resnet18"]["dropped"] == "the teacher's own architecture"
    # the other two are the nominees (top 3 by DisWOT and by params: both); the better
    # few-shot accuracy wins, as computed here on the same data and seed
    inputs = load_inputs(InputSpec.from_config(cfg))
    teacher, data = inputs.teacher, inputs.data
    accs = few_shot(["lcnet_050", "mobilenetv3_small_050"], teacher.module, data, 1, 0, "cpu")
    best, why = expected_pick(accs, data, tmp_path / "run")
    assert student["search"]["few_shot"] == accs
    assert student["name"] == best == cands["chosen"]
    log = (tmp_path / "run/edgekd.log").read_text()
    assert f"student auto -> {best}" in log and why in log
    fp32 = predict_latency(tmp_path / "run/export/model-fp32.onnx", get_target(cfg.target))
    assert fp32.total_ms <= 0.5
    # resume: the search stage is reused, not redone
    again = compress(cfg.model_copy(update={"resume": True}), budgets=budgets)
    assert again.report["student"] == student
    m = json.loads((tmp_path / "run/manifest.json").read_text())
    assert "search" in m["run"]["stages_reused"] and m["run"]["stages_ran"] == []


def test_auto_keeps_the_fastest_when_nothing_fits():
    from edgekd.errors import ConfigError
    from edgekd.search.search import Candidate, chosen

    ranked = [
        Candidate("slow", 10, 2.0, True, False, dropped="over the latency budget"),
        Candidate("fast", 20, 1.5, True, False, dropped="over the latency budget"),
        Candidate("big", 99, float("nan"), False, False, dropped="over the size cap"),
    ]
    assert chosen(ranked, fastest_if_none=True).name == "fast"
    with pytest.raises(ConfigError, match="no candidate meets the latency budget"):
        chosen(ranked)


def test_no_candidate_that_builds_is_one_clear_error():
    from edgekd.errors import ConfigError
    from edgekd.search.search import Candidate, chosen

    ranked = [Candidate("x", 0, float("nan"), False, False, error="too small\nmore")]
    with pytest.raises(ConfigError, match="no candidate student builds") as e:
        chosen(ranked, fastest_if_none=True)
    assert "x: too small" in str(e.value) and "more" not in str(e.value)


def test_nominees_are_the_top_k_by_diswot_and_by_params():
    from edgekd.search.search import nominees

    scores = {
        "a": {"diswot": -0.1, "params": 5},
        "b": {"diswot": -0.2, "params": 9},
        "c": {"diswot": -0.3, "params": 7},
        "d": {"diswot": -0.4, "params": 1},
    }
    assert nominees(scores, 1) == ["a", "b"]  # DisWOT's best, then the largest
    assert nominees(scores, 2) == ["a", "b", "c"]  # {a, b} by DisWOT, {b, c} by params
    assert nominees(scores, 9) == ["a", "b", "c", "d"]
    assert nominees(scores, 0) == []


def test_size_cap():
    from edgekd.search.search import size_cap

    assert size_cap(16_000, None) == 1_000  # no latency budget: 1/16 of the teacher
    assert size_cap(16_000, 2.0) is None  # a latency budget decides alone


def test_search_drops_candidates_over_the_size_cap_keeping_the_smallest(digits_teacher):
    from edgekd.data.digits import digits_bundle
    from edgekd.models import load_teacher
    from edgekd.search.search import search
    from edgekd.targets import get_target

    loaded = load_teacher(str(digits_teacher))
    data = digits_bundle(augment=False)
    target = get_target(FIXED)
    names = ["lcnet_050", "mobilenetv3_small_050"]  # 612,666 and 578,474 params
    ranked = search(loaded.module, data, target, names, latency_budget_ms=None, batch_size=8,
                    teacher_arch=loaded.arch, max_params=600_000)  # fmt: skip
    by = {c.name: c for c in ranked}
    assert by["mobilenetv3_small_050"].scores and by["mobilenetv3_small_050"].within_budget
    assert by["lcnet_050"].dropped == "over the size cap (612666 > 600000 params)"
    assert not by["lcnet_050"].scores and by["lcnet_050"].latency_ms != by["lcnet_050"].latency_ms
    # nothing under the cap: the smallest stays; the teacher's own architecture is no student
    ranked = search(loaded.module, data, target, ["resnet18", *names], latency_budget_ms=None,
                    batch_size=8, teacher_arch=loaded.arch, max_params=1)  # fmt: skip
    assert [c.name for c in ranked if c.scores] == ["mobilenetv3_small_050"]
    by = {c.name: c for c in ranked}
    assert by["resnet18"].dropped == "the teacher's own architecture"


def test_compress_search_confirms_with_few_shot(digits_teacher, tmp_path, monkeypatch):
    import edgekd.search.space as space
    from edgekd.config import Budgets, CompressConfig
    from edgekd.inputs import InputSpec, load_inputs
    from edgekd.pipeline.compress import compress
    from edgekd.search.search import few_shot

    pair = ["lcnet_050", "mobilenetv3_small_050"]
    monkeypatch.setattr(space, "candidates", lambda *a, **k: pair)
    budgets = Budgets(latency_ms=0.5, max_accuracy_drop=100)
    cfg = CompressConfig(
        teacher=str(digits_teacher), target=FIXED, student="search",
        few_shot_k=2, few_shot_epochs=1, out=tmp_path / "run", epochs=1, qat_epochs=0,
        calib_size=32, budgets=budgets, device="cpu", max_train=400,
    )  # fmt: skip
    result = compress(cfg, budgets=budgets)
    inputs = load_inputs(InputSpec.from_config(cfg))
    teacher, data = inputs.teacher, inputs.data  # the same bundle compress trains on
    accs = few_shot(pair, teacher.module, data, 1, cfg.seed, "cpu")
    best, why = expected_pick(accs, data, tmp_path / "run")
    assert result.report["student"]["name"] == best
    assert result.report["student"]["chosen_by"] == "search"
    assert result.report["student"]["search"]["few_shot_acc"] == accs[best]
    log = (tmp_path / "run/edgekd.log").read_text()
    assert f"student search -> {best}" in log and why in log


def test_few_shot_k_needs_a_student_search(digits_teacher, tmp_path):
    out = tmp_path / "x"
    proc = run_cli("compress", str(digits_teacher), "--student", "lcnet_050", "--few-shot-k",
                   "2", "--out", str(out))  # fmt: skip
    assert_one_line_error(proc, "--few-shot-k 2", "--student lcnet_050", "auto or search")
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


def test_a_vit_teachers_reference_is_built_as_the_teacher_was(tmp_path):
    """A ViT state dict at 32x32 with 8x8 patches: the random-init reference must be built
    with the same img_size and patch_size (timm's defaults do not run at 32x32)."""
    import timm
    import torch

    from edgekd.data.digits import digits_bundle
    from edgekd.models import load_teacher
    from edgekd.search.search import diswot_reference

    vit = timm.create_model("deit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=8)
    torch.save(vit.state_dict(), tmp_path / "vit.pt")
    loaded = load_teacher(str(tmp_path / "vit.pt"), arch="deit_tiny_patch16_224",
                          arch_args={"patch_size": 8}, input_shape=(3, 32, 32))  # fmt: skip
    data = digits_bundle(augment=False)
    ref = diswot_reference(loaded.module, loaded.arch, data, 8, 0, loaded.meta["arch_args"])
    assert ref.source.startswith("deit_tiny_patch16_224 at random init") and not ref.trained


def test_a_torchscript_teacher_is_searched_on_its_outputs(tmp_path):
    """DisWOT hooks the teacher's layers; a TorchScript teacher has none to hook, so its side
    is its logits (issue 25 item 1: before, this failed after minutes with a feature-loss
    message). The table says which reference was used."""
    import warnings

    import torch

    from tests.cli.test_cli_runner import invoke

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(8, 10)).eval()  # fmt: skip
    ts = tmp_path / "teacher.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(net, torch.zeros(1, 3, 32, 32)).save(str(ts))
    r = invoke("search", str(ts), "--data", "digits", "--max-train", "200", "--candidate",
               "lcnet_050", "--candidate", "mobilenetv3_small_050", "--few-shot-k", "0",
               "--batch-size", "16", "--out", str(tmp_path / "s"))  # fmt: skip
    assert r.exit_code == 0, (r.stdout, r.stderr)
    cands = json.loads((tmp_path / "s/search/candidates.json").read_text())
    ref = cands["diswot_reference"]
    assert ref.startswith("the trained teacher's outputs only (TorchScript")
    scores = [c["scores"]["diswot"] for c in cands["candidates"]]
    assert len(scores) == 2 and all(s == s and s <= 0 for s in scores)  # finite, -distance


def test_chance_level_is_one_over_classes_plus_three_standard_errors():
    import math

    from edgekd.models.evaluate import chance_level

    # digits: 10 classes, 360 val images: 10% + 3 sqrt(0.1 * 0.9 / 360) = 10% + 4.743%
    assert math.isclose(chance_level(10, 360), 14.7434164902525, rel_tol=1e-12)
    assert math.isclose(chance_level(2, 10_000), 51.5, rel_tol=1e-12)  # 50% + 3 x 0.5%


def test_few_shot_at_chance_or_tied_falls_back_to_diswot():
    from edgekd.search.search import Candidate, chosen, undecided

    def cand(name, diswot, acc):
        return Candidate(name, 1, 1.0, True, True, {"diswot": diswot}, few_shot_acc=acc)

    # `ranked` is in DisWOT order, as search() returns it
    ranked = [cand("a", -0.1, 10.0), cand("b", -0.2, 10.0), cand("c", -0.3, 9.7)]
    why = undecided(ranked, chance=14.74)
    assert why == "every few-shot run ended at chance (best 10.00%, chance up to 14.74%)"
    assert chosen(ranked, chance=14.74).name == "a"
    # above chance, the best wins; a tie at the top goes to the better DisWOT score
    ranked = [cand("a", -0.1, 60.0), cand("b", -0.2, 80.0), cand("c", -0.3, 80.0)]
    assert undecided(ranked, chance=14.74) == "b, c tie at 80.00% after the few-shot runs"
    assert chosen(ranked, chance=14.74).name == "b"
    ranked[2].few_shot_acc = 81.0
    assert undecided(ranked, chance=14.74) is None
    assert chosen(ranked, chance=14.74).name == "c"


def test_latency_cache_is_keyed_by_machine_and_expires(monkeypatch):
    import edgekd.search.search as s
    from edgekd.targets import get_target

    host, jetson = get_target("host"), get_target("jetson-orin-nano-8gb")
    key = s._cache_key("lcnet_050", (3, 32, 32), host)
    assert f"|host|machine {s.machine_id()} threads " in key
    monkeypatch.setattr(s, "machine_id", lambda: "another")
    assert s._cache_key("lcnet_050", (3, 32, 32), host) != key  # another machine measures anew
    assert "|profile " in s._cache_key("lcnet_050", (3, 32, 32), jetson)  # the cost model's
    model = s.build_candidate("lcnet_050", 10, (3, 32, 32))
    cache: dict = {}
    ms, measured = s.candidate_latency("lcnet_050", model, (3, 32, 32), jetson, cache, now=0.0)
    assert not measured and list(cache.values()) == [{"ms": ms, "measured": False, "at": 0.0}]
    (entry,) = cache.values()
    entry["ms"] = -1.0  # a cached figure is what a fresh lookup returns...
    assert s.candidate_latency("lcnet_050", model, (3, 32, 32), jetson, cache, now=10.0)[0] == -1
    later = s.CACHE_MAX_AGE_S + 1.0  # ...until it expires
    assert s.candidate_latency("lcnet_050", model, (3, 32, 32), jetson, cache, now=later)[0] == ms
