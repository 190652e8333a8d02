"""How good is the latency cost model? Host: predicted vs measured on held-out models.
Jetson: predicted vs published figures. Prints tables and writes JSON.

    python benchmarks/latency_model.py [--out benchmarks/results/latency_model.json]

Host: the host profile's efficiencies are fitted (least squares on log latency) to a
calibration set of 8 timm models, then used unchanged to predict a disjoint held-out set of
10 models; both at FP32 and Model Optimizer INT8 Q/DQ, ONNX Runtime, batch 1, 1 thread,
3x128x128 inputs, p50 of 40 runs after 10 warm-up. Goal: median |error| <= 20%, Spearman >= 0.9.

Jetson: for each row of shared/reference/jetson-published.csv, the profile's prediction for
the stand-in model, and a leave-one-out check across the two Ampere (Orin) rows: the
efficiencies fitted on one Orin row predict the other.
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

from edgekd._io import write_json
from edgekd.latency.cost import predict_latency
from edgekd.latency.graph import graph_layers, load_onnx
from edgekd.profiling.calibrate import (
    CALIBRATION_MODELS,
    HELDOUT_MODELS,
    error_stats,
    fit_params,
    measure_samples,
    scale_to_published,
)
from edgekd.targets import get_target

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT.parent / "shared/reference/jetson-published.csv"
# torchvision / MLPerf models and the timm model standing in for each (same architecture
# where one exists). YOLOX-S has no timm twin: timm's cs3darknet_s (the CSPDarknet-S backbone
# family) at 640x640 stands in, its layers' FLOPs and bytes scaled to YOLOX-S's published
# 26.8 GFLOPs at 640x640 (YOLOX README), which stand for the PAFPN neck and the head it lacks.
STAND_INS = {
    "resnet18": (
        "resnet18",
        (3, 224, 224),
        None,
        "torchvision resnet18 = timm resnet18 (same layers)",
    ),
    "resnet50": ("resnet50", (3, 224, 224), None, "torchvision / MLPerf resnet50 = timm resnet50"),
    "yolox-s-leaky": (
        "cs3darknet_s",
        (3, 640, 640),
        26.8e9,
        "timm cs3darknet_s at 640x640 scaled to YOLOX-S's 26.8 GFLOPs",
    ),
}


def standin_layers(row: dict, work: Path):
    """The stand-in's costed layers for a published row, as the device would build it."""
    name, shape, flops, _ = STAND_INS[row["model"]]
    target = get_target(row["device"])
    float_prec = "fp16" if "fp16" in target.precisions else "fp32"
    layers = graph_layers(
        load_onnx(export_float(name, shape, work)),
        target.runtime,
        float_prec,
        implicit_int8=row["precision"] == "int8",
    )
    if flops:
        scale = flops / sum(lay.flops for lay in layers)
        for lay in layers:
            lay.flops *= scale
            lay.bytes *= scale
    return target, layers


def predict_rows(layers, target, params=None) -> float:
    from edgekd.latency.cost import layer_ms

    params = params or target.cost_model
    return sum(layer_ms(lay, target, params)[0] for lay in layers)


def export_float(name: str, shape, out: Path) -> Path:
    import timm
    import torch

    from edgekd.export import export_onnx

    torch.manual_seed(0)
    path = out / f"{name}-{shape[1]}.onnx"
    if not path.exists():
        export_onnx(timm.create_model(name, pretrained=False).eval(), path, shape)
    return path


def host_section(work: Path) -> dict:
    host = get_target("host")
    say = print
    say("== host: calibration set ==")
    cal = measure_samples(CALIBRATION_MODELS, host, workdir=work / "cal", progress=say)
    params, fit = fit_params(cal, host)
    say("== host: held-out set ==")
    held = measure_samples(HELDOUT_MODELS, host, workdir=work / "held", progress=say)
    stats = error_stats(held, host, params)
    print(f"\n{'model':26s} {'prec':5s} {'measured ms':>12s} {'predicted ms':>13s} {'error':>8s}")
    for r in stats["rows"]:
        err = (r["predicted_ms"] - r["measured_ms"]) / r["measured_ms"] * 100
        print(
            f"{r['model']:26s} {r['precision']:5s} {r['measured_ms']:12.2f} "
            f"{r['predicted_ms']:13.2f} {err:+7.1f}%"
        )
    print(
        f"held-out: median |error| {stats['median_abs_pct_error']:.1f}% (goal <= 20%), "
        f"Spearman {stats['spearman']:.3f} (goal >= 0.9); calibration fit: median "
        f"{fit['median_abs_pct_error']:.1f}%, Spearman {fit['spearman']:.3f}"
    )
    return {
        "fitted_params": params.model_dump(),
        "calibration_fit": fit,
        "heldout": stats,
        "calibration_models": CALIBRATION_MODELS,
        "heldout_models": HELDOUT_MODELS,
    }


def jetson_section(work: Path) -> dict:
    rows = list(csv.DictReader(PUBLISHED.open()))
    out = []
    layers_of = {}
    print("\n== Jetson: published vs predicted ==")
    print(
        f"{'device':24s} {'model':15s} {'prec':5s} {'published':>10s} {'predicted':>10s} "
        f"{'error':>8s}  stand-in"
    )
    for r in rows:
        note = STAND_INS[r["model"]][3]
        target, layers = standin_layers(r, work)
        pred = predict_rows(layers, target)
        pub = float(r["value"])
        err = (pred - pub) / pub * 100
        _, k = scale_to_published(layers, target, pub)
        print(
            f"{r['device']:24s} {r['model']:15s} {r['precision']:5s} {pub:10.3f} "
            f"{pred:10.3f} {err:+7.1f}%  {note} (efficiency scale to match: {k:.3f})"
        )
        layers_of[r["device"]] = (layers, pub)
        out.append(
            {
                **r,
                "stand_in": note,
                "predicted_ms": pred,
                "error_pct": err,
                "within_35pct": abs(err) <= 35,
                "scale_to_match": k,
            }
        )
    # leave one out across the two Orin rows: fit on one, predict the other
    loo = []
    orins = [d for d in layers_of if "orin" in d]
    for fit_dev in orins:
        for test_dev in orins:
            if fit_dev == test_dev:
                continue
            params, k = scale_to_published(
                layers_of[fit_dev][0], get_target(fit_dev), layers_of[fit_dev][1]
            )
            pred = predict_rows(layers_of[test_dev][0], get_target(test_dev), params)
            pub = layers_of[test_dev][1]
            loo.append(
                {
                    "fit_on": fit_dev,
                    "predict": test_dev,
                    "published_ms": pub,
                    "predicted_ms": pred,
                    "error_pct": (pred - pub) / pub * 100,
                }
            )
            print(
                f"leave-one-out: efficiencies fitted on {fit_dev} predict {test_dev}: "
                f"{pred:.3f} ms vs published {pub:.3f} ms ({loo[-1]['error_pct']:+.1f}%)"
            )
    return {"rows": out, "leave_one_out": loo}


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
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        result = {
            "command": "python benchmarks/latency_model.py",
            "machine": {
                "platform": platform.platform(),
                "cpu": platform.processor(),
                "date": time.strftime("%Y-%m-%d"),
            },
            "jetson": jetson_section(work),
            "prediction_speed": speed_section(work),
        }
        if not args.skip_host:
            result["host"] = host_section(work)
    write_json(args.out, result)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
