"""Do the training-free proxies predict the student that distils best? Kendall tau between each
proxy's score and the final INT8 accuracy of every candidate, fully distilled the same way.

    python benchmarks/search_proxies.py --threads 1 [--epochs 8] [--seeds 0 1]
        [--reuse benchmarks/results/search_proxies.json] [--out ...]
        [--teacher PATH] [--device cpu|cuda] [--jobs N] [--no-stability]
        [--data digits|fashion-mnist[:PATH]] [--max-train N]

Teacher: the example resnet18 (10 epochs, examples/digits/train_teacher.py; trained here with
the given thread count). Each candidate: the proxies exactly as `edgekd search` computes them
(`diswot_reference` + `score_candidate`: DisWOT averaged over 4 random inits x 3 batches of
64 training images against the teacher's architecture at the same init; the others on init 0
and batch 0), then for every seed: KD (kd loss, AdamW one-cycle lr 1e-2, batch 64,
`--epochs`, deterministic transform so the teacher is cached, student initialised with that
seed) and INT8 PTQ with Model Optimizer (max, 256 images); ground truth = the INT8 fake-quant
model's top-1 on the data's report set, averaged over the seeds: digits' 360 val images, or
Fashion-MNIST's official 10,000 test images, which no checkpoint selection sees (on digits one
candidate's accuracy moves by up to 4 points between seeds: see the per-seed values in the
JSON). `--data fashion-mnist --max-train N` distils on a stratified N of the 55,000 training
images (the val split picks the checkpoint); `--teacher` is then required (e.g.
examples/fashion/teacher.pt).

`--reuse FILE` takes the per-seed accuracies, few-shot accuracies and host latencies of an
earlier run of the same recipe (epochs, teacher) from FILE instead of retraining and
re-measuring (on a shared machine a candidate's p90 moves by tens of microseconds between
runs, enough to move it across a budget); the training-free proxies are always recomputed.
The params baseline is in the same table: a proxy matters only above it. Goal (issue 4):
DisWOT tau >= 0.5 and above the baseline. The `few_shot` row is not training-free: it is the
val top-1 after the 2 epochs of KD `edgekd search --few-shot-k` runs, to show what the
confirmation step adds.

`--jobs N` runs N candidate/seed trainings at once, each in its own process with
`--threads` threads (`--device cuda`: all on the one GPU). `--teacher PATH` loads a teacher
checkpoint instead of training the example one.

Proxy stability (skip with `--no-stability`): the two DisWOT halves for each single draw
(4 inits x 3 batches, at batch size 64 and 256) against two references: the trained teacher
(`trained`) and the teacher's architecture at the draw's random init (`random_init`, what
`edgekd search` uses). Reported: the tau of each single draw (min / median / max), the tau of
the mean over the draws, the spread of each half within a candidate against the spread
between candidates; and, per batch, the share of the trained teacher's three largest
per-sample errors in its total (its classifier gradient is the error-weighted sum of the
embeddings: a teacher that fits the batch almost perfectly leaves d_sem to a few
near-misses).

The `nominated` picker is the rule of `compress --student auto`: few-shot KD only for the
nominees (the top 3 by DisWOT and the top 3 by params within the budget,
`edgekd.search.search.nominees`), the best few-shot accuracy wins; `few_shot` trains every
candidate within the budget. (Without a latency budget auto also caps the student at 1/16 of
the teacher's parameters, `size_cap`; the `none` row here has no cap.)
`--summarize FILE` recomputes FILE's taus, picks and regret from its rows alone.

`--latencies FILE` takes the host latencies of an earlier run on this machine (they do not
depend on the teacher). `--rescore FILE` recomputes only the training-free proxies for FILE's
rows, keeping its accuracies, few-shot accuracies and latencies (the proxies depend on the
teacher's architecture, not on its weights, when the data is labelled), and writes FILE's taus
and picks anew.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from scipy.stats import kendalltau

from edgekd._io import write_json
from edgekd.distill import TrainConfig, distill, evaluate_torch
from edgekd.models import create_timm, load_teacher, save_checkpoint
from edgekd.quant import quantize_int8
from edgekd.search.proxies import diswot_score
from edgekd.search.proxies.diswot_official import OfficialDiswot
from edgekd.search.search import (
    AUTO_FEW_SHOT_K,
    candidate_at,
    candidate_latency,
    diswot_reference,
    few_shot,
    nominees,
    score_candidate,
    scoring_batch,
)
from edgekd.search.space import build_candidate
from edgekd.targets import get_target

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = [
    "lcnet_050", "lcnet_075", "lcnet_100", "mobilenetv3_small_050", "mobilenetv3_small_075",
    "mobilenetv3_small_100", "mobilenetv4_conv_small_050", "tinynet_e", "ghostnet_050",
    "regnetx_002", "resnet10t", "mobilenetv4_conv_small", "resnet14t", "mobilenetv3_large_075",
    "tinynet_c", "regnetx_004",
]  # fmt: skip
PROXIES = ("diswot", "d_sem", "d_rel", "diswot_official", "sp", "ickd", "naswot", "synflow",
           "gradnorm", "params", "few_shot")  # fmt: skip
DISTANCES = ("d_sem", "d_rel", "sp", "ickd")  # lower is better
PICKERS = ("diswot", "diswot_official", "naswot", "params", "few_shot", "nominated")
BUDGETS_MS = (0.15, 0.2, 0.3, 0.5, 0.8, None)  # p90 on this host, 1 ORT thread
NOTE = (
    "d_sem and d_rel are the two halves of edgekd's DisWOT, sp and ickd those of the "
    "official form (diswot_official, edgekd/search/proxies/diswot_official.py); the taus "
    "of the halves are of the negated distances"
)
STABILITY = {"batch_sizes": (64, 256), "batch_seeds": (0, 1, 2), "init_seeds": (0, 1, 2, 3)}


def picks(rows: list[dict]) -> list[dict]:
    """What a search ranked by each score would ship under each latency budget: the INT8
    accuracy of its pick, the best reachable (oracle) and the mean (a random pick)."""
    out = []
    for budget in BUDGETS_MS:
        fit = [r for r in rows if budget is None or r["latency_ms"] <= budget]
        if not fit:
            continue
        entry = {"budget_ms": budget, "candidates": len(fit),
                 "oracle": max(r["int8_top1"] for r in fit),
                 "random": sum(r["int8_top1"] for r in fit) / len(fit)}  # fmt: skip
        for p in PICKERS[:-1]:
            best = max(fit, key=lambda r, p=p: r["scores"][p])
            entry[p] = {"pick": best["candidate"], "int8_top1": best["int8_top1"]}
        # `compress --student auto`'s rule: few-shot KD of the nominees only (top 3 by DisWOT
        # and by params), the best few-shot accuracy wins
        by_name = {r["candidate"]: r for r in fit}
        tried = nominees({n: r["scores"] for n, r in by_name.items()}, AUTO_FEW_SHOT_K)
        best = max((by_name[n] for n in tried), key=lambda r: r["scores"]["few_shot"])
        entry["nominated"] = {"pick": best["candidate"], "int8_top1": best["int8_top1"],
                         "few_shot_runs": len(tried)}  # fmt: skip
        out.append(entry)
    return out


def previous_accuracies(
    path: Path | None, epochs: int, teacher_desc: str, data_desc: tuple = ("digits", None),
) -> dict:  # fmt: skip
    """{candidate: {seed: INT8 top-1}} from an earlier run of the same recipe: the same
    epochs, teacher and (data, max_train)."""
    if path is None or not path.exists():
        return {}
    old = json.loads(path.read_text())
    was = (old.get("data", "digits"), old.get("max_train"))
    if old.get("epochs") != epochs or old.get("teacher") != teacher_desc or was != data_desc:
        print(f"not reusing {path}: another recipe ({old.get('epochs')} epochs, "
              f"{old.get('teacher')}, data {was[0]}, max-train {was[1]})")  # fmt: skip
        return {}
    out = {}
    for r in old["rows"]:
        seeds = r.get("int8_top1_by_seed") or {"0": r["int8_top1"]}  # first format: seed 0
        out[r["candidate"]] = {int(s): a for s, a in seeds.items()}
        if "few_shot" in r["scores"]:
            out[r["candidate"]]["few_shot"] = r["scores"]["few_shot"]
        if "latency_ms" in r:
            out[r["candidate"]]["latency_ms"] = r["latency_ms"]
    return out


def distilled_int8_accuracy(name, seed, epochs, data, teacher, device="cpu") -> float:
    """KD on `device`, then INT8 PTQ and the fake-quant model's val top-1 on the CPU."""
    torch.manual_seed(seed)
    model = create_timm(name, data.num_classes)
    with tempfile.TemporaryDirectory() as d:
        res = distill(model, teacher, data, TrainConfig(epochs, 1e-2, seed=seed, device=device), d)
        ck = torch.load(res.best_path, weights_only=True, map_location="cpu")
    model = model.cpu()
    model.load_state_dict(ck["model"])
    q = quantize_int8(model, data.calibration_subset(256, 0), 64, method="max")
    return evaluate_torch(q, data.report_set)[0]


_WORKER: dict = {}


def _init_worker(teacher_path: str, threads: int, spec: str, max_train: int | None) -> None:
    from kd_losses import bench_data

    torch.set_num_threads(threads)
    _WORKER["teacher"] = load_teacher(teacher_path).module.eval()
    _WORKER["data"] = bench_data(spec, max_train)


def _train_job(job: tuple) -> tuple:
    name, seed, epochs, device = job
    t0 = time.perf_counter()
    acc = distilled_int8_accuracy(name, seed, epochs, _WORKER["data"], _WORKER["teacher"], device)
    print(f"  {name} seed {seed}: int8 {acc:.2f}% ({time.perf_counter() - t0:.0f} s)", flush=True)
    return job, acc


def train_all(
    jobs: list[tuple], teacher, data, n: int, threads: int, teacher_path=None,
    data_args: tuple = ("digits", None),
) -> dict:  # fmt: skip
    """{(name, seed): INT8 top-1} for every (name, seed, epochs, device) job, n at a time;
    `data_args` (spec, max_train) rebuild `data` in the worker processes."""
    if n <= 1:
        return {(j[0], j[1]): distilled_int8_accuracy(j[0], j[1], j[2], data, teacher, j[3])
                for j in jobs}  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        if teacher_path is None:  # the example teacher trained in this process
            teacher_path = Path(d) / "teacher.pt"
            save_checkpoint(teacher_path, teacher, "resnet18", data.num_classes, data.input_shape)
        ctx = multiprocessing.get_context("spawn")
        init = (str(teacher_path), threads, *data_args)
        with ProcessPoolExecutor(n, ctx, _init_worker, init) as pool:
            return {(j[0], j[1]): acc for j, acc in pool.map(_train_job, jobs)}


def teacher_error_share(teacher, x: torch.Tensor, y: torch.Tensor, top: int = 3) -> float:
    """Share of the 3 largest per-sample errors |softmax(z) - onehot(y)|_1 in the batch's
    total: the teacher's classifier gradient (d_sem) is the error-weighted sum of the samples'
    embeddings, so a share near 1 means a handful of near-misses decide it."""
    with torch.no_grad():
        p = teacher.eval()(x).float().softmax(1)
    err = (p - F.one_hot(y, p.shape[1])).abs().sum(1).sort(descending=True).values
    return float(err[:top].sum() / err.sum())


def proxy_stability(teacher, arch: str, data, names: list[str], acc: list[float]) -> dict:
    """The DisWOT halves per draw, against the trained teacher and its architecture at the
    draw's random init."""
    out: dict = {"trained": {}, "random_init": {}}
    for bs in STABILITY["batch_sizes"]:
        draws = {ref: {n: [] for n in names} for ref in out}  # [(d_sem, d_rel)] per candidate
        shares = []
        for b in STABILITY["batch_seeds"]:
            x, y = scoring_batch(teacher, data, bs, b)
            shares.append(teacher_error_share(teacher, x, y))
            for i in STABILITY["init_seeds"]:
                torch.manual_seed(i)
                at_init = create_timm(arch, data.num_classes, in_chans=data.input_shape[0])
                for n in names:
                    for ref, t in (("trained", teacher), ("random_init", at_init)):
                        torch.manual_seed(i)
                        student = build_candidate(n, data.num_classes, data.input_shape)
                        s = diswot_score(t, student, x, y, teacher_batch_stats=t is at_init)
                        draws[ref][n].append((s["d_sem"], s["d_rel"]))
        for ref in out:
            entry = {}
            for key, f in (("diswot", lambda d: d[0] + d[1]), ("d_sem", lambda d: d[0]),
                           ("d_rel", lambda d: d[1])):  # fmt: skip
                per = [[f(d) for d in draws[ref][n]] for n in names]
                single = sorted(kendalltau([-p[k] for p in per], acc)[0]
                                for k in range(len(per[0])))  # fmt: skip
                means = [statistics.mean(p) for p in per]
                entry[key] = {
                    "tau_single_draw": {
                        "min": single[0],
                        "median": statistics.median(single),
                        "max": single[-1],
                    },  # fmt: skip
                    "tau_of_mean": float(kendalltau([-m for m in means], acc)[0]),
                    "sd_within_candidate": statistics.mean(statistics.stdev(p) for p in per),
                    "sd_between_candidates": statistics.stdev(means),
                }
            out[ref][str(bs)] = entry
        out["trained"][str(bs)]["teacher_top3_error_share"] = shares
    return out


OFFICIAL_DRAWS = 5  # (init seed, batch) draws of the official DisWOT's single-draw score


def official_draws(teacher, arch: str, data, names: list[str], acc: list[float]) -> dict:
    """The official DisWOT is one draw (one N(0, 1) init, one batch of 64): its tau, and its
    halves', for OFFICIAL_DRAWS draws (init seed i, scoring batch i)."""
    taus: dict = {k: [] for k in ("diswot_official", "sp", "ickd")}
    for i in range(OFFICIAL_DRAWS):
        x, y = scoring_batch(teacher, data, 64, i)

        def teacher_at(s: int):
            torch.manual_seed(s)
            return create_timm(arch, data.num_classes, in_chans=data.input_shape[0])

        ref = OfficialDiswot(teacher_at, x, y, i)
        per = [ref.score(candidate_at(n, data.num_classes, data.input_shape)) for n in names]
        for k in taus:
            sign = 1 if k == "diswot_official" else -1
            taus[k].append(float(kendalltau([sign * p[k] for p in per], acc)[0]))
    out = {k: {"taus": v, "min": min(v), "median": statistics.median(v), "max": max(v)}
           for k, v in taus.items()}  # fmt: skip
    print(f"\nofficial DisWOT, {OFFICIAL_DRAWS} single draws (init i, batch i): tau "
          "min / median / max")  # fmt: skip
    for k, e in out.items():
        print(f"  {k:15s} {e['min']:+.3f} / {e['median']:+.3f} / {e['max']:+.3f}")
    return out


def print_stability(stability: dict) -> None:
    print("\nDisWOT per draw, 4 inits x 3 batches (tau vs INT8 top-1: single draws min / median / "
          "max, and of the mean over draws; sd of a candidate's draws vs sd between "
          "candidates):")  # fmt: skip
    for ref, by_bs in stability.items():
        for bs, entry in by_bs.items():
            if "teacher_top3_error_share" in entry:
                shares = ", ".join(f"{v:.2f}" for v in entry["teacher_top3_error_share"])
                print(f"  batch {bs:>3s}: the trained teacher's 3 largest errors carry {shares} "
                      "of its error")  # fmt: skip
            for k, e in entry.items():
                if k == "teacher_top3_error_share":
                    continue
                t = e["tau_single_draw"]
                print(f"  {ref:11s} batch {bs:>3s} {k:7s} {t['min']:+.3f} / {t['median']:+.3f} / "
                      f"{t['max']:+.3f}  mean {e['tau_of_mean']:+.3f}  sd within "
                      f"{e['sd_within_candidate']:.4f} between "
                      f"{e['sd_between_candidates']:.4f}")  # fmt: skip


def analyse(rows: list[dict], label: str) -> tuple[dict, list[dict], dict]:
    """(Kendall taus, picks by budget, mean regret) of the rows, printed."""
    acc = [r["int8_top1"] for r in rows]
    taus = {}
    for p in PROXIES:
        sign = -1 if p in DISTANCES else 1
        tau, pval = kendalltau([sign * r["scores"][p] for r in rows], acc)
        taus[p] = {"tau": float(tau), "p_value": float(pval)}
    print(f"\nKendall tau vs INT8 top-1 over {len(rows)} candidates ({label}):")
    for p, t in taus.items():
        print(f"  {p:15s} tau {t['tau']:+.3f} (p {t['p_value']:.3f})")
    chosen = picks(rows)
    print("\nWhat each score would ship (INT8 top-1 of its pick) under a host p90 budget:")
    print(f"  {'budget':>8s} {'n':>3s} {'oracle':>7s} {'random':>7s} "
          + " ".join(f"{p:>{max(9, len(p))}s}" for p in PICKERS))  # fmt: skip
    for e in chosen:
        b = "none" if e["budget_ms"] is None else f"{e['budget_ms']} ms"
        print(f"  {b:>8s} {e['candidates']:3d} {e['oracle']:7.2f} {e['random']:7.2f} "
              + " ".join(f"{e[p]['int8_top1']:{max(9, len(p))}.2f}" for p in PICKERS))  # fmt: skip
    regret = {p: sum(e["oracle"] - e[p]["int8_top1"] for e in chosen) / len(chosen)
              for p in PICKERS}  # fmt: skip
    regret["random"] = sum(e["oracle"] - e["random"] for e in chosen) / len(chosen)
    print("  mean regret (points below the oracle): "
          + ", ".join(f"{p} {v:.2f}" for p, v in regret.items()))  # fmt: skip
    return taus, chosen, regret


def training_free(reference, name: str, data) -> tuple[dict, float]:
    """(scores, seconds) of one candidate, as `edgekd search` computes them."""
    t0 = time.perf_counter()
    scores = score_candidate(reference, candidate_at(name, data.num_classes, data.input_shape))
    return scores, time.perf_counter() - t0


def rescore(path: Path, teacher, arch: str, data, stability: bool) -> None:
    """New training-free scores for the rows of an earlier run; everything else kept."""
    old = json.loads(path.read_text())
    reference = diswot_reference(teacher, arch, data, 64, 0)
    for r in old["rows"]:
        scores, r["score_s"] = training_free(reference, r["candidate"], data)
        r["scores"] = {**scores, "few_shot": r["scores"]["few_shot"]}
    label = f"{old['teacher']}, {old['epochs']} epochs KD, seeds {old['seeds']}"
    old["kendall_tau"], old["picks_by_budget"], old["mean_regret"] = analyse(old["rows"], label)
    old["diswot_reference"] = reference.source
    old["note"] = NOTE
    acc = [r["int8_top1"] for r in old["rows"]]
    names = [r["candidate"] for r in old["rows"]]
    old["official_diswot_draws"] = official_draws(teacher, arch, data, names, acc)
    if stability:
        old["proxy_stability"] = proxy_stability(teacher, arch, data, names, acc)
        print_stability(old["proxy_stability"])
    old["goal_diswot_tau_ge_0_5_and_above_params"] = goal(old["kendall_tau"])
    old["rescored"] = {"command": f"python benchmarks/search_proxies.py --rescore {path}",
                       "machine": platform.platform(), "torch": torch.__version__}  # fmt: skip
    write_json(path, old)
    print(f"rewrote {path}")


def summarize(path: Path) -> None:
    """Taus, picks and regret of FILE's rows anew (new pickers; nothing recomputed)."""
    old = json.loads(path.read_text())
    label = f"{old['teacher']}, {old['epochs']} epochs KD, seeds {old['seeds']}"
    old["kendall_tau"], old["picks_by_budget"], old["mean_regret"] = analyse(old["rows"], label)
    old["goal_diswot_tau_ge_0_5_and_above_params"] = goal(old["kendall_tau"])
    write_json(path, old)
    print(f"rewrote {path}")


def goal(taus: dict) -> bool:
    return taus["diswot"]["tau"] >= 0.5 and taus["diswot"]["tau"] > taus["params"]["tau"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--candidates", nargs="+", default=CANDIDATES)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--reuse", type=Path, default=None)
    ap.add_argument("--rescore", type=Path, default=None)
    ap.add_argument("--summarize", type=Path, default=None, help="re-analyse FILE's rows only")
    ap.add_argument(
        "--latencies",
        type=Path,
        default=None,
        help="take the host latencies from this earlier result (same machine)",
    )
    ap.add_argument("--teacher", type=Path, default=None)
    ap.add_argument("--device", default="cpu", help="where the KD runs train")
    ap.add_argument("--jobs", type=int, default=1, help="KD runs at once")
    ap.add_argument("--stability", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--data", default="digits", help="digits or fashion-mnist[:PATH]")
    ap.add_argument("--max-train", type=int, default=None, help="stratified training subset")
    ap.add_argument("--out", type=Path, default=None,
                    help="default benchmarks/results/search_proxies[-DATA].json")  # fmt: skip
    args = ap.parse_args()
    if args.data != "digits" and args.teacher is None:
        ap.error(f"--data {args.data} needs --teacher (the built-in teacher is digits' own); "
                 "e.g. --teacher examples/fashion/teacher.pt")  # fmt: skip
    suffix = "" if args.data == "digits" else "-" + args.data.partition(":")[0]
    args.out = args.out or ROOT / f"benchmarks/results/search_proxies{suffix}.json"
    if args.summarize:
        return summarize(args.summarize)
    torch.set_num_threads(args.threads)
    from kd_losses import bench_data, teacher_model  # benchmarks/ is on sys.path as a script

    teacher, teacher_desc = teacher_model(args.teacher)
    arch = load_teacher(str(args.teacher)).arch if args.teacher else "resnet18"
    teacher.eval()
    data = bench_data(args.data, args.max_train)
    if args.rescore:
        return rescore(args.rescore, teacher, arch, data, args.stability)
    reference = diswot_reference(teacher, arch, data, 64, 0)
    known = previous_accuracies(args.reuse, args.epochs, teacher_desc,
                                (args.data, args.max_train))  # fmt: skip
    if args.latencies:  # latency does not depend on the teacher
        for r in json.loads(args.latencies.read_text())["rows"]:
            known.setdefault(r["candidate"], {})["latency_ms"] = r["latency_ms"]
    host = get_target("host")
    scored = {}
    for name in args.candidates:
        scores, score_s = training_free(reference, name, data)
        if "latency_ms" in known.get(name, {}):  # re-measuring would move the budget picks
            latency_ms = known[name]["latency_ms"]
        else:
            model = candidate_at(name, data.num_classes, data.input_shape)(0)
            latency_ms, _ = candidate_latency(name, model, data.input_shape, host, {})
        # not training-free: what `edgekd search --few-shot-k` confirms with (2 epochs of KD)
        if "few_shot" in known.get(name, {}):
            scores["few_shot"] = known[name]["few_shot"]
        else:
            scores["few_shot"] = few_shot([name], teacher, data, 2, 0, args.device)[name]
            teacher.cpu()  # distill moved it to --device; the proxies score on the CPU
        scored[name] = (scores, score_s, latency_ms)
    jobs = [(n, s, args.epochs, args.device) for n in args.candidates for s in args.seeds
            if s not in known.get(n, {})]  # fmt: skip
    t0 = time.perf_counter()
    trained = train_all(jobs, teacher, data, args.jobs, args.threads, args.teacher,
                        (args.data, args.max_train))  # fmt: skip
    print(f"{len(jobs)} KD runs on {args.device}, {args.jobs} at once: "
          f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
    rows = []
    for name in args.candidates:
        scores, score_s, latency_ms = scored[name]
        by_seed = {s: known[name][s] if s in known.get(name, {}) else trained[(name, s)]
                   for s in args.seeds}  # fmt: skip
        reused = [s for s in args.seeds if s in known.get(name, {})]
        acc = sum(by_seed.values()) / len(by_seed)
        rows.append({"candidate": name, "int8_top1": acc, "int8_top1_by_seed": by_seed,
                     "reused_seeds": reused, "scores": scores, "score_s": score_s,
                     "latency_ms": latency_ms})  # fmt: skip
        print(f"{name:28s} int8 {acc:6.2f}% {list(by_seed.values())}  diswot "
              f"{scores['diswot']:.4f}  params {scores['params']:.0f}", flush=True)  # fmt: skip
    label = f"{teacher_desc}, {args.epochs} epochs KD, mean of seeds {args.seeds}"
    taus, chosen, regret = analyse(rows, label)
    acc = [r["int8_top1"] for r in rows]
    draws = official_draws(teacher, arch, data, args.candidates, acc)
    stability = None
    if args.stability:
        stability = proxy_stability(teacher, arch, data, args.candidates, acc)
        print_stability(stability)
    write_json(args.out, {
        "command": "python benchmarks/search_proxies.py --threads "
        f"{args.threads} --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}"
        + (f" --device {args.device}" if args.device != "cpu" else "")
        + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
        + (f" --data {args.data}" if args.data != "digits" else "")
        + (f" --max-train {args.max_train}" if args.max_train else "")
        + (f" --teacher {args.teacher}" if args.teacher else "")
        + ("" if args.stability else " --no-stability"),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": args.threads, "kd_device": args.device,
                    "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda")
                    else None},  # fmt: skip
        "teacher": teacher_desc, "teacher_top1": evaluate_torch(teacher, data.report_set)[0],
        "data": args.data, "max_train": args.max_train, "train_images": len(data.train),
        "accuracy_split": data.report_split, "accuracy_images": len(data.report_set),
        "epochs": args.epochs, "seeds": args.seeds, "rows": rows,
        "diswot_reference": reference.source,
        "kendall_tau": taus, "note": NOTE,
        "picks_by_budget": chosen, "mean_regret": regret, "proxy_stability": stability,
        "official_diswot_draws": draws,
        "goal_diswot_tau_ge_0_5_and_above_params": goal(taus),
    })  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
