"""How good is the latency cost model? Host: predicted vs measured on held-out models.
Jetson: predicted vs published figures it was not fitted on. Prints tables and writes JSON.

    python benchmarks/latency_model.py [--out benchmarks/results/latency_model.json]
        [--rounds 5] [--skip-host] [--cache DIR] [--write-profiles]

Host: the host profile's efficiencies are fitted (least squares on log latency) to a
calibration set of 8 timm models, then used unchanged to predict a disjoint held-out set of
10 models; both at FP32 and Model Optimizer INT8 Q/DQ, ONNX Runtime, batch 1, 1 thread,
3x128x128 inputs. Each model is timed in --rounds interleaved rounds (p50 of 40 runs after 10
warm-up per round), the median of the rounds kept and their spread reported, with the load
average before and after. Goal: median |error| <= 20%, Spearman >= 0.9 on a quiet machine.

Jetson: every figure in targets/evidence/*.csv that a stand-in can rebuild (see
edgekd.profiling.fit): one cost model per GPU architecture fitted on all of them, and each
model/device/precision group predicted by a fit without it (held out). Prints the per-device
table, the ranges, and with --write-profiles puts parameters, fit and range into the
TensorRT profiles.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from edgekd._io import write_json
from edgekd.latency.cost import predict_latency
from edgekd.latency.graph import load_onnx
from edgekd.profiling.calibrate import (
    CALIBRATION_MODELS,
    HELDOUT_MODELS,
    error_stats,
    fit_params,
    measure_samples,
)
from edgekd.targets import get_target

ROOT = Path(__file__).resolve().parents[1]
RANGE_NOTE = (
    "leave-one-group-out over the published figures of the {fam} family (the figures of one "
    "model on one device at one precision and size held out together): {n} figures"
)


def export_float(name: str, shape, out: Path) -> Path:
    import timm
    import torch

    from edgekd.export import export_onnx

    torch.manual_seed(0)
    path = out / f"{name}-{shape[1]}.onnx"
    if not path.exists():
        export_onnx(timm.create_model(name, pretrained=False).eval(), path, shape)
    return path


def host_section(work: Path, rounds: int) -> dict:
    """Fit the host cost model on the calibration set, check it on the held-out set; every
    model timed in `rounds` interleaved rounds (median of the rounds' p50, and the spread)."""
    import os
    import statistics

    host = get_target("host")
    say = print
    load = [os.getloadavg()[0]]
    say(f"== host: calibration set, {rounds} interleaved rounds ==")
    cal = measure_samples(
        CALIBRATION_MODELS, host, workdir=work / "cal", progress=say, repeats=rounds
    )
    params, fit = fit_params(cal, host)
    say(f"== host: held-out set, {rounds} interleaved rounds ==")
    held = measure_samples(
        HELDOUT_MODELS, host, workdir=work / "held", progress=say, repeats=rounds
    )
    load.append(os.getloadavg()[0])
    stats = error_stats(held, host, params)
    spread = {f"{s.model} {s.precision}": s.spread_pct for s in held}
    print(
        f"\n{'model':26s} {'prec':5s} {'measured ms':>12s} {'spread':>7s} {'predicted ms':>13s} "
        f"{'error':>8s}"
    )
    for r in stats["rows"]:
        err = (r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] * 100
        print(
            f"{r['model']:26s} {r['precision']:5s} {r['measured_ms']:12.2f} "
            f"{spread[r['model'] + ' ' + r['precision']]:6.0f}% {r['predicted_ms']:13.2f} "
            f"{err:+7.1f}%"
        )
    med_spread = statistics.median(s.spread_pct for s in cal + held)
    print(
        f"held-out: median |error| {stats['median_abs_pct_error']:.1f}% (goal <= 20%), "
        f"Spearman {stats['spearman']:.3f} (goal >= 0.9 on a quiet machine); calibration fit: "
        f"median {fit['median_abs_pct_error']:.1f}%, Spearman {fit['spearman']:.3f}; median "
        f"spread between rounds {med_spread:.0f}%; 1-min load average {load[0]:.1f} before, "
        f"{load[1]:.1f} after, on {os.cpu_count()} CPUs"
    )
    return {
        "rounds": rounds,
        "statistic": f"median over {rounds} interleaved rounds of each round's p50 (40 runs "
        "after 10 warm-up), 1 thread",
        "load_average_1min": load,
        "cpus": os.cpu_count(),
        "median_spread_pct": med_spread,
        "spread_pct": spread,
        "fitted_params": params.model_dump(),
        "calibration_fit": fit,
        "heldout": stats,
        "calibration_models": CALIBRATION_MODELS,
        "heldout_models": HELDOUT_MODELS,
    }


def jetson_section(work: Path, write_profiles: bool) -> dict:
    """Fit each TensorRT family on targets/evidence, hold out each group, print per device."""
    from edgekd.profiling.evidence import load_evidence
    from edgekd.profiling.fit import abs_pct, fit_evidence, median_or_none, params_dict
    from edgekd.targets import builtin_profiles

    profiles = builtin_profiles()
    figures = load_evidence()
    print(f"\n== Jetson: {len(figures)} published figures in targets/evidence ==")
    fits, skipped = fit_evidence(figures, profiles, work, progress=print)
    reasons: dict[str, int] = {}
    for _, why in skipped:
        reasons[why] = reasons.get(why, 0) + 1
    for why, n in sorted(reasons.items()):
        print(f"  not used: {n} figure(s): {why}")
    rows, devices, families = [], [], []
    for f in fits:
        for c, before, fitted, held in zip(
            f.items, f.prior_ms, f.fitted_ms, f.held_ms, strict=True
        ):
            rows.append(
                {
                    "device": c.fig.device, "family": f.family, "model": c.fig.model,
                    "standin": c.fig.standin, "input": list(c.fig.shape),
                    "precision": c.fig.precision, "metric": c.fig.metric,
                    "published_ms": c.fig.ms, "before_ms": before, "fitted_ms": fitted,
                    "heldout_ms": held, "heldout_error_pct": (held - c.fig.ms) / c.fig.ms * 100,
                    "source": c.fig.source, "where": c.fig.where,
                }
            )  # fmt: skip
        families.append(
            {
                "family": f.family, "members": f.members, "figures": len(f.items),
                "groups": len({c.fig.group for c in f.items}),
                "params": params_dict(f.theta).model_dump(),
                "range": list(f.band) if f.band else None, "range_figures": f.band_figures,
                "range_basis": f.band_basis,
            }
        )  # fmt: skip
        for m in f.members:
            mine = [r for r in rows if r["device"] == m]
            devices.append(device_row(m, f, mine))
    print(
        f"\n{'device':24s} {'family':7s} {'figs':>4s} {'groups':>6s} {'before':>7s} "
        f"{'fitted':>7s} {'held-out':>8s} {'worst':>6s}  trust"
    )
    for d in devices:
        fmt = lambda x: "-" if x is None else f"{x:.0f}%"  # noqa: E731
        print(
            f"{d['device']:24s} {d['family']:7s} {d['figures']:4d} {d['groups']:6d} "
            f"{fmt(d['before_median_pct']):>7s} {fmt(d['fitted_median_pct']):>7s} "
            f"{fmt(d['heldout_median_pct']):>8s} {fmt(d['heldout_max_pct']):>6s}  {d['trust']}"
        )
    overall = median_or_none([abs_pct(r["heldout_ms"], r["published_ms"]) for r in rows])
    before = median_or_none([abs_pct(r["before_ms"], r["published_ms"]) for r in rows])
    print(
        f"all {len(rows)} usable figures: held-out median |error| {overall:.1f}% (goal <= 30%); "
        f"the profiles before evidence was fitted (PRIORS): {before:.1f}%"
    )
    for fam in families:
        if fam["range"]:
            lo, hi = fam["range"]
            print(
                f"{fam['family']}: predicted t reads as [{lo:.2f} t, {hi:.2f} t] "
                f"(80% of {fam['range_figures']} held-out figures)"
            )
    if write_profiles:
        for f in fits:
            for m in f.members:
                path = ROOT / "targets" / f"{m}.yaml"
                write_fit(path, f, next(d for d in devices if d["device"] == m))
                print(f"written: {path.relative_to(ROOT)}")
    return {
        "figures_in_evidence": len(figures),
        "not_used": [{"where": fig.where, "reason": why} for fig, why in skipped],
        "heldout_median_abs_pct_error": overall,
        "before_median_abs_pct_error": before,
        "ridge": _ridge(),
        "families": families,
        "devices": devices,
        "rows": rows,
    }


def _ridge() -> float:
    from edgekd.profiling.fit import RIDGE

    return RIDGE


def device_row(name: str, f, mine: list[dict]) -> dict:
    """A device's figures and errors, and how far its fit can be trusted."""
    from edgekd.profiling.fit import abs_pct, median_or_none

    err = [abs_pct(r["heldout_ms"], r["published_ms"]) for r in mine]
    models = {r["standin"] for r in mine}
    if not mine:
        trust = f"no figures: parameters from its {f.family} siblings, untested on this device"
    elif len(models) < 3:
        trust = f"{len(mine)} figure(s) of {len(models)} model(s): checked, but thinly"
    else:
        trust = f"{len(mine)} figures of {len(models)} models, each held out"
    return {
        "device": name,
        "family": f.family,
        "figures": len(mine),
        "groups": len({(r["standin"], r["precision"]) for r in mine}),
        "models": sorted(models),
        "before_median_pct": median_or_none(
            [abs_pct(r["before_ms"], r["published_ms"]) for r in mine]
        ),
        "fitted_median_pct": median_or_none(
            [abs_pct(r["fitted_ms"], r["published_ms"]) for r in mine]
        ),
        "heldout_median_pct": median_or_none(err),
        "heldout_max_pct": max(err) if err else None,
        "trust": trust,
    }


def write_fit(path: Path, f, dev: dict) -> None:
    """Put the family's fitted parameters, the fit record and the range into a profile."""
    from edgekd.profiling.fit import params_dict
    from edgekd.profiling.profile_file import set_profile_keys

    fam_figs = len(f.items)
    held = dev["heldout_median_pct"]
    fit = {
        "method": (
            f"shared by the {f.family} family ({', '.join(f.members)}): least squares on log "
            f"latency over {fam_figs} published figures in targets/evidence, with a ridge pull "
            "toward edgekd.profiling.fit.PRIORS; benchmarks/latency_model.py --write-profiles"
        ),
        "this_device": (
            f"{dev['figures']} figure(s), held-out median |error| {held:.1f}%, worst "
            f"{dev['heldout_max_pct']:.1f}%"
            if dev["figures"]
            else dev["trust"]
        ),
        "trust": dev["trust"],
    }
    keys = {"cost_model": params_dict(f.theta).model_dump(), "fit": fit}
    sources = {
        "cost_model": "targets/evidence/*.csv, fitted by benchmarks/latency_model.py (see fit)"
    }
    if f.band:
        keys["prediction_range"] = {
            "low": round(f.band[0], 3),
            "high": round(f.band[1], 3),
            "coverage": 0.8,
            "figures": f.band_figures,
            "basis": f.band_basis,
        }
        sources["prediction_range"] = "benchmarks/latency_model.py: held-out ratios, see basis"
    set_profile_keys(path, keys, sources)


def speed_section(work: Path) -> dict:
    path = export_float("resnet101", (3, 224, 224), work)
    target = get_target("jetson-orin-nano-8gb")
    predict_latency(path, target, "int8")
    t0 = time.perf_counter()
    pred = predict_latency(path, target, "int8")
    dt = time.perf_counter() - t0
    n_nodes = len(load_onnx(path).graph.node)
    print(
        f"\nprediction time: resnet101 ({n_nodes} ONNX nodes, {len(pred.layers)} layers): "
        f"{dt:.3f} s (goal < 1 s)"
    )
    return {"model": "resnet101", "onnx_nodes": n_nodes, "layers": len(pred.layers), "seconds": dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/latency_model.json")
    ap.add_argument("--skip-host", action="store_true", help="only the Jetson and speed parts")
    ap.add_argument("--skip-jetson", action="store_true", help="only the host part")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds on the host")
    ap.add_argument(
        "--cache", type=Path, help="keep the stand-ins' ONNX files here (reused next run)"
    )
    ap.add_argument(
        "--write-profiles",
        action="store_true",
        help="write the fitted parameters and ranges into targets/<jetson>.yaml",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        work = args.cache or Path(d)
        result = {
            "command": "python benchmarks/latency_model.py " + " ".join(sys.argv[1:]),
            "machine": {
                "platform": platform.platform(),
                "cpu": platform.processor(),
                "date": time.strftime("%Y-%m-%d"),
            },
        }
        if not args.skip_jetson:
            result["jetson"] = jetson_section(work, args.write_profiles)
            result["prediction_speed"] = speed_section(work)
        if not args.skip_host:
            result["host"] = host_section(work, args.rounds)
    write_json(args.out, result)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
