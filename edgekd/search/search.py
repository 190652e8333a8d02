"""Latency-constrained, training-free student search.

For every candidate (see `space`): build it at the teacher's input shape, export it to ONNX and
cost it on the target (the cost model; measured with ONNX Runtime when the target is the
host), cached by (architecture, input shape, target) in $EDGEKD_HOME/search-cache.json;
candidates over the latency budget are dropped before any scoring. The rest are scored by
every proxy and ranked by DisWOT: averaged over DISWOT_INITS random inits x DISWOT_BATCHES real
batches, against the teacher's architecture at the same random init (see
`proxies.diswot.DiswotReference`); NASWOT, SynFlow, grad-norm and params score the candidate
at `seed` on the first batch. With `few_shot_k`, the nominees (`nominees`: the top k by
DisWOT and the top k by parameter count) are distilled for `few_shot_epochs` each (the same
budget) and the best validation accuracy wins.

`--student auto` (compress) is this search over the whole space with `AUTO_FEW_SHOT_K`, capped
at 1/16 of the teacher's parameters when there is no latency budget (`size_cap`).
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from edgekd._io import write_json
from edgekd.distributed import gather, join, leave, rank_device, send, torchrun_launch
from edgekd.errors import ConfigError
from edgekd.progress import Tally
from edgekd.search import proxies
from edgekd.search.proxies import DiswotReference
from edgekd.search.proxies.diswot_official import OfficialDiswot
from edgekd.search.space import build_candidate
from edgekd.targets import TargetProfile, user_profiles_dir


@dataclass
class Candidate:
    name: str
    params: int
    latency_ms: float
    latency_measured: bool
    within_budget: bool
    scores: dict[str, float] = field(default_factory=dict)
    few_shot_acc: float | None = None
    error: str | None = None
    diswot_reference: str | None = None  # what DisWOT compared against (see diswot_reference)
    dropped: str | None = None  # why it was not scored: over the size cap or the budget


AUTO_FEW_SHOT_K = 3  # --student auto: nominees per ranking for the few-shot runs
AUTO_MAX_PARAM_FRACTION = 1 / 16  # --student auto without a latency budget


def size_cap(teacher_params: int, latency_budget_ms: float | None) -> int | None:
    """The most parameters an `auto` student may have: without a latency budget size is the
    only goal, so 1/16 of the teacher's; with one the budget decides (None: no cap). A student
    with more parameters than its teacher can still be the faster and the better one: on the
    digits benchmark resnet10t (4.9M) beat an efficientnet_b0 teacher's (4.0M) other students
    at 0.64 ms on the host; --max-model-mb bounds the artifact's size."""
    if latency_budget_ms is None:
        return int(teacher_params * AUTO_MAX_PARAM_FRACTION)
    return None


def nominees(scores: dict[str, dict[str, float]], k: int, by: str = "diswot") -> list[str]:
    """The candidates the few-shot runs train: the top `k` by DisWOT (the score `by`) and the
    top `k` by parameter count, DisWOT's first (at most 2k names). `scores`: {name: proxy
    scores}.

    Neither ranking alone nominates the best student reliably: on the digits benchmark
    (benchmarks/search_proxies.py, four ground truths, six host latency budgets) DisWOT ranked
    well for a resnet18 teacher and poorly for an efficientnet_b0 one, parameter count the
    other way round. With both (at most 6 of 16 trained), the few-shot pick was the same as
    after training every candidate briefly: a mean of 0.02-0.49 points below the best student
    (worst single budget 2.1), against 0.00-1.78 (5.8) for DisWOT and 0.49-1.94 (4.9) for
    params alone.
    """
    if k <= 0:
        return []
    top = {p: sorted(scores, key=lambda n, p=p: -scores[n][p])[:k] for p in (by, "params")}
    return list(dict.fromkeys(top[by] + top["params"]))


def scoring_batch(teacher, data, batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The one real batch every candidate is scored on: `batch_size` training images (eval
    transform) drawn with `seed`, with their labels (the teacher's classes when unlabeled)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.calib_source), generator=g)[:batch_size].tolist()
    x = torch.stack([data.calib_source[i][0] for i in idx])
    y = torch.as_tensor([int(data.calib_source[i][1]) for i in idx])
    if (y < 0).any():  # label-free data: the teacher's classes
        with torch.no_grad():
            y = teacher.eval()(x).argmax(1)
    return x, y


DISWOT_INITS = 4  # random inits of teacher and student per DisWOT score
DISWOT_BATCHES = 3  # real scoring batches per DisWOT score


def diswot_reference(
    teacher, teacher_arch: str | None, data, batch_size: int, seed: int,
    teacher_args: dict | None = None,
):  # fmt: skip
    """The teacher's side of DisWOT for a search: `teacher_arch` (a timm name, built with the
    teacher's own `teacher_args` and at the data's size when it takes one) at random init
    with seeds seed..seed+DISWOT_INITS-1, on DISWOT_BATCHES scoring batches (seeds seed, ...);
    the trained `teacher` itself when its architecture is unknown. `.source` says which."""
    batches = [scoring_batch(teacher, data, batch_size, seed + b) for b in range(DISWOT_BATCHES)]
    seeds = [seed + i for i in range(DISWOT_INITS)]
    draws = f"{DISWOT_INITS} inits x {DISWOT_BATCHES} batches of {batch_size}"
    if teacher_arch:
        from edgekd.models.loading import build_timm

        args = {**(teacher_args or {}), "in_chans": data.input_shape[0]}

        def teacher_at(s: int):
            torch.manual_seed(s)
            return build_timm(teacher_arch, data.num_classes, args, data.input_shape)[0]

        try:
            ref = DiswotReference(teacher_at, batches, seeds,
                                  source=f"{teacher_arch} at random init, {draws}")  # fmt: skip
            ref.official = official_diswot(teacher_at, batches[0], seed)
            return ref
        except Exception as e:  # e.g. an architecture name timm does not build at this shape
            why = f" ({teacher_arch!r} does not build here: {str(e).splitlines()[0][:80]})"
    else:
        why = " (its architecture is unknown)"
    teacher.eval()
    from edgekd.models.onnx_teacher import opaque_kind

    kind = opaque_kind(teacher)
    if kind is not None:  # its layers cannot be hooked
        return DiswotReference(lambda _s: teacher, batches, seeds, trained=True,
                               outputs_only=True,
                               source=f"the trained teacher's outputs only ({kind}: its "
                               "layers cannot be hooked; relation of logits, no semantic "
                               f"term), {draws}")  # fmt: skip
    ref = DiswotReference(lambda _s: teacher, batches, seeds, trained=True,
                          source=f"the trained teacher{why}, {draws}")  # fmt: skip
    # the official form re-initialises the teacher it is given (N(0, 1)): a copy of this one
    ref.official = official_diswot(lambda _s: copy.deepcopy(teacher), batches[0], seed)
    return ref


def official_diswot(teacher_at, batch, seed: int) -> OfficialDiswot | None:
    """The official DisWOT's teacher side, or None where that teacher does not run at
    N(0, 1) init (the search then ranks by edgekd's DisWOT alone, as it always does)."""
    try:
        return OfficialDiswot(teacher_at, *batch, seed)
    except Exception:  # a scored extra: it never stops a search
        return None


def score_candidate(reference: DiswotReference, model_at, model=None) -> dict[str, float]:
    """Every proxy's score of a candidate; all "higher is better". `model_at(seed)` builds
    the candidate at random init with that seed: DisWOT over the reference's draws, the other
    proxies on the model at the first seed (`model`, when the caller already built it) and
    the first batch."""
    model = model if model is not None else model_at(reference.seeds[0])
    x, y = reference.batches[0]
    official = {}
    if reference.official is not None:
        try:
            official = reference.official.score(model_at)
        except Exception:  # e.g. no classifier to read the gradient of: ranks last by it
            official = {"diswot_official": float("-inf")}
    return {
        **reference.score(model_at),
        **official,
        "naswot": proxies.naswot_score(model, x),
        "synflow": proxies.synflow_score(model, tuple(x.shape[1:])),
        "gradnorm": proxies.gradnorm_score(model, x, y),
        "params": proxies.params_score(model),
    }


def candidate_at(name: str, num_classes: int, shape):
    """`model_at(seed)`: the candidate built at random init with `seed`."""

    def model_at(seed: int):
        torch.manual_seed(seed)
        return build_candidate(name, num_classes, shape)

    return model_at


def _cache_path() -> Path:
    return user_profiles_dir().parent / "search-cache.json"


def _load_cache() -> tuple[Path, dict]:
    path = _cache_path()
    return path, json.loads(path.read_text()) if path.exists() else {}


CACHE_MAX_AGE_S = 7 * 24 * 3600  # a cached candidate latency older than this is measured again


def machine_id() -> str:
    """This machine as the latency cache knows it: host name, CPU model and count, ONNX
    Runtime version (a measurement from another machine, or another runtime, is not this
    one's)."""
    import hashlib
    import os
    import platform

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "-"
    text = f"{platform.node()}|{platform.machine()}|{cpu}|{os.cpu_count()}|{ort}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _cache_key(name: str, shape, target: TargetProfile) -> str:
    """Measured: this machine's (`machine_id`); predicted: this profile's cost model."""
    import hashlib

    if target.measured:
        where = f"machine {machine_id()} threads {target.threads or 1}"
    else:
        where = "profile " + hashlib.sha256(target.model_dump_json().encode()).hexdigest()[:12]
    return f"{name}|{'x'.join(map(str, shape))}|{target.name}|{where}"


def candidate_latency(
    name: str, model, shape, target: TargetProfile, cache: dict, now: float | None = None
) -> tuple:
    """(p90 ms, measured?) of the candidate on the target, cached in `cache` by machine (or
    cost model) for CACHE_MAX_AGE_S; a noisy measurement is used but not cached."""
    now = time.time() if now is None else now
    key = _cache_key(name, shape, target)
    hit = cache.get(key)
    if hit is not None and now - hit.get("at", 0) <= CACHE_MAX_AGE_S:
        return hit["ms"], hit["measured"]
    from edgekd.export import export_onnx

    with tempfile.TemporaryDirectory() as d:
        path = export_onnx(model.eval(), Path(d) / "c.onnx", shape).path
        if target.measured:
            from edgekd.backends import onnxruntime as ortb

            rep = ortb.profile(path, shape, threads=target.threads or 1, warmup=10, iters=50)
            ms, measured, noisy = rep.p90_ms, True, rep.noise is not None
        else:
            from edgekd.latency.cost import predict_latency

            ms, measured, noisy = predict_latency(path, target).total_ms, False, False
    if noisy:
        cache.pop(key, None)
    else:
        cache[key] = {"ms": ms, "measured": measured, "at": now}
    return ms, measured


def search(
    teacher: torch.nn.Module,
    data,
    target: TargetProfile,
    names: list[str],
    *,
    latency_budget_ms: float | None,
    batch_size: int = 64,
    seed: int = 0,
    few_shot_k: int = 0,
    few_shot_epochs: int = 2,
    device: str = "cpu",
    progress=None,
    distributed: bool = True,
    teacher_arch: str | None = None,
    max_params: int | None = None,
    teacher_args: dict | None = None,
    rank_by: str = "diswot",
) -> list[Candidate]:
    """Rank `names` for distillation from `teacher` on `data` within the latency budget.
    `teacher_arch`: the teacher's timm architecture (`LoadedModel.arch`), for DisWOT's
    random-init reference (built with `teacher_args`, the timm keyword arguments of the
    teacher: `LoadedModel.meta["arch_args"]`); without it DisWOT compares against the trained
    teacher.
    `max_params`: candidates with more parameters are dropped before any costing (when none
    is that small, the smallest stays).
    `rank_by`: "diswot" (edgekd's form, `proxies.diswot`) or "diswot_official" (the form of
    the paper's code, `proxies.diswot_official`) orders the candidates and nominates with
    params for the few-shot runs.

    Inside a torch.distributed job (`torchrun -m edgekd search`, see `edgekd.distributed`)
    rank 0 filters and scores, the few-shot runs are spread over the ranks (candidate i on
    rank i mod world size, each trained alone on its own GPU or CPU) and their accuracies are
    gathered on rank 0; the other ranks return an empty list. `distributed=False`: this
    process searches alone (compress's rank 0 under torchrun)."""
    say = progress or (lambda _m: None)
    launch = torchrun_launch() if distributed else None
    if launch is not None:
        join(device)
        device = rank_device(device, launch)
        if not launch.leader:  # None: rank 0 failed before the few-shot runs
            if (top := send(None)) is not None:
                few_shot(top, teacher, data, few_shot_epochs, seed, device, launch, say)
            leave()
            return []
    try:
        ranked = _score_all(teacher, (teacher_arch, teacher_args), data, target, names,
                            latency_budget_ms, batch_size, seed, say, max_params,
                            rank_by)  # fmt: skip
    except BaseException:
        if launch is not None:
            send(None)
            leave()
        raise
    scored = {c.name: c.scores for c in ranked if c.within_budget and c.scores}
    top = nominees(scored, few_shot_k, rank_by)
    if launch is not None:
        top = send(top)
    accs = few_shot(top, teacher, data, few_shot_epochs, seed, device, launch, say)
    if launch is not None:
        leave()
    for cand in ranked:
        cand.few_shot_acc = accs.get(cand.name, cand.few_shot_acc)
    return ranked


def few_shot(names, teacher, data, epochs, seed, device, launch=None, say=None) -> dict:
    """{name: best val top-1 after `epochs` of KD}, each candidate from the same seed. With a
    torchrun launch this rank trains its share and rank 0 returns every rank's results."""
    say = say or (lambda _m: None)
    from edgekd.distill import TrainConfig, distill

    rank, world = (launch.rank, launch.world_size) if launch else (0, 1)
    mine = {}
    share = names[rank::world]
    where = f" (rank {rank})" if world > 1 else ""
    tally = Tally(say, f"few-shot KD{where}", "epochs", every=0)
    steps = Tally(say, f"few-shot KD{where}", "steps", every=5.0)  # within long epochs
    for i, name in enumerate(share):
        torch.manual_seed(seed)
        model = build_candidate(name, data.num_classes, data.input_shape)
        cfg = TrainConfig(epochs, 1e-2, seed=seed, device=device)
        per_run = epochs * math.ceil(len(data.train) / cfg.batch_size)

        def epoch_done(r, i=i, name=name):
            tally(i * epochs + r["epoch"], len(share) * epochs,
                  f"{name} ({i + 1} of {len(share)}) epoch {r['epoch']}/{epochs}, val "
                  f"{r['val_acc']:.2f}%")  # fmt: skip

        def step_done(e, s, n, i=i, name=name, per_run=per_run):
            done = i * per_run + e * n + s + 1
            if done < len(share) * per_run:  # the last step's line is epoch_done's
                steps(done, len(share) * per_run, f"{name} ({i + 1} of {len(share)}) epoch "
                      f"{e + 1}/{epochs}, step {s + 1}/{n}")  # fmt: skip

        with tempfile.TemporaryDirectory() as d:
            res = distill(model, teacher, data, cfg, d, distributed=False, on_epoch=epoch_done,
                          on_step=step_done)  # fmt: skip
        mine[name] = res.best_val_acc
        say(f"{name}: few-shot val {res.best_val_acc:.2f}%{where}")
    if launch is None:
        return mine
    parts = gather(mine) or []
    return {k: v for part in parts for k, v in part.items()}


def _score_all(
    teacher, arch, data, target, names, latency_budget_ms, batch_size, seed, say, max_params,
    rank_by="diswot",
):
    """Every candidate built; those within the size cap costed; those within the latency
    budget scored. Ranked by DisWOT, then the rest."""
    teacher_arch, teacher_args = arch  # the teacher's timm name and keyword arguments
    shape = data.input_shape
    cache_file, cache = _load_cache()
    out: list[Candidate] = []
    built = {}
    building = Tally(say, "search: building candidates")
    for i, name in enumerate(names):
        try:
            built[name] = candidate_at(name, data.num_classes, shape)(seed)
        except Exception as e:  # one bad candidate does not stop the search
            out.append(Candidate(name, 0, float("nan"), False, False, error=str(e)[:200]))
            say(f"{name}: does not build ({str(e).splitlines()[0][:120] if str(e) else e!r})")
        building(i + 1, len(names))
    sizes = {n: int(proxies.params_score(m)) for n, m in built.items()}
    # the teacher's own architecture is no student (and DisWOT would rank it first: the
    # random-init reference is that very network, distance 0); it takes no part in the cap
    students = {n: p for n, p in sizes.items() if n != teacher_arch}
    allowed = set(students)
    if max_params is not None:
        allowed = {n for n, p in students.items() if p <= max_params}
        allowed = allowed or set(sorted(students, key=students.get)[:1])  # else the smallest
    reference = None  # built at the first candidate within budget
    costed = [n for n in built if n in allowed]
    capped = [n for n in built if n not in allowed and n != teacher_arch]
    if capped:
        say(f"search: {len(capped)} of {len(names)} candidates over the size cap ({max_params} "
            f"params), not costed: {', '.join(capped)}")  # fmt: skip
    tally = Tally(say, "search: candidate", every=0)  # a line per candidate costed
    for name, model in built.items():
        if name == teacher_arch:
            why = "the teacher's own architecture"
            out.append(Candidate(name, sizes[name], float("nan"), False, False, dropped=why))
            say(f"{name}: {why}, dropped")
            continue
        if name not in allowed:
            why = f"over the size cap ({sizes[name]} > {max_params} params)"
            out.append(Candidate(name, sizes[name], float("nan"), False, False, dropped=why))
            continue
        done = costed.index(name) + 1
        ms, measured = candidate_latency(name, model, shape, target, cache)
        at = f"{ms:.3f} ms {'measured' if measured else 'predicted'}"
        fits = latency_budget_ms is None or ms <= latency_budget_ms
        cand = Candidate(name, sizes[name], ms, measured, fits)
        out.append(cand)
        if not fits:
            cand.dropped = f"over the latency budget ({ms:.3f} > {latency_budget_ms} ms)"
            tally(done, len(costed), f"{name}: {at} > budget, dropped")
            continue
        if reference is None:
            reference = diswot_reference(teacher, teacher_arch, data, batch_size, seed,
                                         teacher_args)  # fmt: skip
            say(f"DisWOT against {reference.source}")
            if rank_by == "diswot_official" and reference.official is None:
                raise ConfigError(
                    "the official DisWOT needs the teacher's layers (its embedding and "
                    "classifier), and this teacher's cannot be hooked or re-initialised",
                    value="--rank-by diswot-official",
                    fix="use --rank-by diswot (edgekd's form, which compares outputs here)",
                )
        t0 = time.perf_counter()
        cand.scores = score_candidate(reference, candidate_at(name, data.num_classes, shape),
                                      model)  # fmt: skip
        cand.diswot_reference = reference.source
        tally(done, len(costed), f"{name}: {at}, diswot {cand.scores['diswot']:.4f} "
              f"(scored in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
    write_json(cache_file, cache)
    order = {n: i for i, n in enumerate(names)}
    out.sort(key=lambda c: order[c.name])
    ranked = sorted(
        (c for c in out if c.within_budget and c.scores),
        key=lambda c: -c.scores[rank_by],
    )
    return ranked + [c for c in out if c not in ranked]


def undecided(ranked: list[Candidate], chance: float | None) -> str | None:
    """Why the few-shot accuracies cannot pick the student (None when they can): the best of
    them is at chance (`chance_level`), or two or more share it."""
    shot = [c for c in ranked if c.within_budget and c.scores and c.few_shot_acc is not None]
    if not shot:
        return None
    best = max(c.few_shot_acc for c in shot)
    if chance is not None and best <= chance:
        return f"every few-shot run ended at chance (best {best:.2f}%, chance up to {chance:.2f}%)"
    tied = [c.name for c in shot if c.few_shot_acc == best]
    if len(tied) > 1:
        return f"{', '.join(tied)} tie at {best:.2f}% after the few-shot runs"
    return None


def chosen(
    ranked: list[Candidate], *, fastest_if_none: bool = False, chance: float | None = None
) -> Candidate:
    """The winner: best few-shot accuracy when there is one, else the top DisWOT score. When
    the few-shot runs cannot decide (`undecided`: all at `chance`, or a tie at the top), the
    proxy ranking does: the top DisWOT score (of the tied ones). When no candidate meets the
    budget: the fastest costed one with `fastest_if_none` (the report then shows the budget
    missed), else an error."""
    fit = [c for c in ranked if c.within_budget and c.scores]
    if ranked and all(c.error for c in ranked):
        raise ConfigError(
            "no candidate student builds for this data",
            value=f"{ranked[0].name}: {ranked[0].error.splitlines()[0][:120]}",
            fix="check --input-shape, or give --student NAME or --candidate",
        )
    if not fit:
        costed = [c for c in ranked if c.latency_ms == c.latency_ms]  # not NaN
        if fastest_if_none and costed:
            return min(costed, key=lambda c: c.latency_ms)
        raise ConfigError(
            "no candidate meets the latency budget",
            fix="raise --latency-budget-ms or add smaller candidates",
        )
    shot = [c for c in fit if c.few_shot_acc is not None]
    if not shot:
        return fit[0]
    best = max(c.few_shot_acc for c in shot)
    if chance is not None and best <= chance:
        return fit[0]  # fit is in DisWOT order
    return next(c for c in fit if c.few_shot_acc == best)  # a tie goes to DisWOT's order


def diswot_source(ranked: list[Candidate]) -> str | None:
    """What the search's DisWOT compared against (None when nothing was scored)."""
    return next((c.diswot_reference for c in ranked if c.diswot_reference), None)


def write_results(
    out_dir: Path, ranked: list[Candidate], budget: float | None, pick: Candidate | None = None
) -> Path:
    """search/candidates.json and search/pareto.png (latency vs DisWOT score). `pick`: the
    chosen candidate, when not `chosen(ranked)`."""
    path = write_json(
        out_dir / "candidates.json",
        {
            "latency_budget_ms": budget,
            "chosen": (pick or chosen(ranked)).name,
            "diswot_reference": diswot_source(ranked),
            "candidates": [asdict(c) for c in ranked],
        },  # fmt: skip
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    scored = [c for c in ranked if c.scores]
    ax.scatter([c.latency_ms for c in scored], [c.scores["diswot"] for c in scored])
    for c in scored:
        ax.annotate(c.name, (c.latency_ms, c.scores["diswot"]), fontsize=6)
    if budget:
        ax.axvline(budget, linestyle="--", color="grey")
    ax.set_xlabel("latency ms (p90 or predicted)")
    ax.set_ylabel("DisWOT score (higher is better)")
    fig.tight_layout()
    fig.savefig(out_dir / "pareto.png", dpi=120)
    plt.close(fig)
    return path
