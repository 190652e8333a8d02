"""INT8 on ONNX Runtime, measured: FP32 vs Model Optimizer's Q/DQ graph vs the ORT INT8 graph
edgekd ships, all INT8 and with its precision chosen per block, per student, resolution and
thread count, interleaved and repeated.

    python benchmarks/quant.py [--students resnet18 mobilenetv3_large_100 mobilenetv3_small_050]
        [--sizes 32 64 128 224] [--threads 1 2] [--rounds 5] [--iters 30]
        [--out benchmarks/results/quant.json]

For each model (random init: latency does not depend on the weights) at 3xSxS, batch 1:
- fp32: the float ONNX;
- int8-modelopt: Model Optimizer INT8 fake-quant (max calibration, residual Adds quantized)
  exported as Q/DQ, the graph TensorRT wants (BatchNorm unfolded);
- int8-ort: ONNX Runtime's own Q/DQ graph as the quantize stage builds it for ONNX Runtime
  targets (`ort_qat.ort_qdq_of`: BatchNorm folded, max calibration on 32 random images) and
  written as the export stage writes it (`export_ort`), every layer INT8;
- int8-ort-mixed: the same graph after the export stage's per-block choice
  (`precision.measured_precision` with its defaults, made at that thread count on this
  machine). What ships is the faster of fp32 and this one (the validate stage).

Timing: for each model, size and thread count the four artifacts are timed in `--rounds`
rounds, one p50 each per round (`--iters` runs after 5 warm-up), the order rotated every round,
so that other work on a shared machine falls on every artifact rather than on one. A row
gives the median of its rounds' p50 and their spread ((max - min) / median); its speed-up over
FP32 is the median of the per-round ratios, with their range. The float Conv/Gemm count left in
ORT's optimized graph says whether ORT runs the INT8 layers as integer kernels (0 = all).
The per-block choice is timed separately, before these rounds, so the mixed row's figures are
a fresh measurement, not the one it was chosen on.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from edgekd._io import write_json
from edgekd.backends import onnxruntime as ortb
from edgekd.export import export_onnx
from edgekd.latency.measure import interleaved
from edgekd.quant import quantize_int8
from edgekd.quant.ort_layout import fusion_report
from edgekd.quant.ort_qat import export_ort, ort_qdq_of
from edgekd.quant.precision import measured_precision

ROOT = Path(__file__).resolve().parents[1]
STUDENTS = ("resnet18", "mobilenetv3_large_100", "mobilenetv3_small_050")
SIZES = (32, 64, 128, 224)
ARTIFACTS = ("fp32", "int8-modelopt", "int8-ort", "int8-ort-mixed")


def build(name: str, size: int, d: Path):
    """The fp32, Model Optimizer and all-INT8 ORT files of one model at 3 x size x size, and
    the ORT graph as a module (for the per-block choice)."""
    import timm

    shape = (3, size, size)
    torch.manual_seed(0)
    calib = TensorDataset(torch.randn(32, *shape), torch.zeros(32, dtype=torch.long))
    model = timm.create_model(name, pretrained=False).eval()
    files = {"fp32": export_onnx(model, d / f"{name}-{size}.onnx", shape).path}
    q = quantize_int8(timm.create_model(name, pretrained=False).eval(), calib, 8)
    q.load_state_dict(model.state_dict(), strict=False)
    files["int8-modelopt"] = export_onnx(q, d / f"{name}-{size}-mo.onnx", shape).path
    ort = ort_qdq_of(model, shape, calib, 8)
    files["int8-ort"] = export_ort(ort, d / f"{name}-{size}-ort.onnx")
    return files, ort


def timed(files: dict[str, Path], size: int, threads: int, rounds: int, iters: int):
    """{artifact: [p50 per round]}, interleaved, the order rotated each round."""
    kinds = list(files)

    def once(i: int, _round: int) -> float:
        shape = (3, size, size)
        return ortb.profile(files[kinds[i]], shape, threads=threads, warmup=5, iters=iters).p50_ms

    return dict(zip(kinds, interleaved(len(kinds), rounds, once), strict=True))


def spread(xs: list[float]) -> float:
    return (max(xs) - min(xs)) / statistics.median(xs) * 100


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", nargs="+", default=list(STUDENTS))
    ap.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/quant.json")
    args = ap.parse_args()
    if args.rounds < 1 or args.iters < 1:
        raise SystemExit("--rounds and --iters must be at least 1")
    rows, choices, t0 = [], [], time.perf_counter()
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as d:
        for name in args.students:
            for size in args.sizes:
                files, ort = build(name, size, Path(d))
                for threads in args.threads:
                    t1 = time.perf_counter()
                    ort.set_float([])  # every choice starts from all INT8
                    choice = measured_precision(ort, (3, size, size), threads=threads)
                    mixed = export_ort(ort, Path(d) / f"{name}-{size}-{threads}t-mixed.onnx")
                    at = files | {"int8-ort-mixed": mixed}
                    choices.append({"model": name, "size": size, "threads": threads,
                                    "seconds": time.perf_counter() - t1} | choice.to_record())
                    print(f"{name} {size}px {threads}t: {choice.line()}", flush=True)
                    left = {k: fusion_report(p)["float_conv_gemm"] for k, p in at.items()}
                    times = timed(at, size, threads, args.rounds, args.iters)
                    for kind in ARTIFACTS:
                        ratios = [f / t for f, t in zip(times["fp32"], times[kind], strict=True)]
                        row = {
                            "model": name, "size": size, "threads": threads, "artifact": kind,
                            "p50_ms": statistics.median(times[kind]),
                            "rounds_ms": times[kind], "spread_pct": spread(times[kind]),
                            "speedup_vs_fp32": statistics.median(ratios),
                            "speedup_range": [min(ratios), max(ratios)],
                            "float_conv_gemm_left": left[kind],
                        }  # fmt: skip
                        if kind == "int8-ort-mixed":
                            row["float_blocks"] = choice.float_blocks
                            row["blocks"] = len(choice.blocks)
                        rows.append(row)
                        print(
                            f"{name:22s} {size:3d}px {threads}t {kind:14s} p50 "
                            f"{row['p50_ms']:8.3f} ms (spread {row['spread_pct']:4.0f}%)  x"
                            f"{row['speedup_vs_fp32']:5.2f} vs fp32 "
                            f"[{min(ratios):.2f}-{max(ratios):.2f}]  float Conv/Gemm left: "
                            f"{left[kind]}",
                            flush=True,
                        )
                    load.append(os.getloadavg()[0])
    write_json(
        args.out,
        {
            "command": "python benchmarks/quant.py --students " + " ".join(args.students)
            + " --sizes " + " ".join(map(str, args.sizes))
            + " --threads " + " ".join(map(str, args.threads))
            + f" --rounds {args.rounds} --iters {args.iters}",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "date": time.strftime("%Y-%m-%d"),
                        "load_average_1min": [min(load), max(load)]},
            "batch": 1,
            "statistic": f"median over {args.rounds} interleaved rounds of each round's p50 "
            f"({args.iters} runs after 5 warm-up); speed-up: median of the per-round ratios",
            "seconds": time.perf_counter() - t0,
            "rows": rows,
            "choices": choices,
        },
    )  # fmt: skip
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
