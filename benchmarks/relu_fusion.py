"""What dropping the pre-ReLU Q/DQ pairs (`ort_qat.drop_pre_relu_pairs`) buys in ONNX Runtime:
the same model, weights and calibrated ranges written as ORT INT8 twice, with those pairs
(the template as ORT's quantizer leaves it) and without (what edgekd ships), timed beside FP32.

    python benchmarks/relu_fusion.py [--model resnet18] [--size 224] [--threads 1 2]
        [--rounds 7] [--iters 30] [--out benchmarks/results/relu_fusion.json]

The model is a random-init timm model (latency does not depend on the weights), calibrated on
32 random images (max). Timing as benchmarks/quant.py: per round one p50 of `--iters` runs after
5 warm-up per file, the files' order rotated each round (`latency.measure.interleaved`); the
JSON holds every round, the medians, and the per-round ratios' median and range. The op counts
of ORT's optimized graph (`ort_layout.fusion_report`) show where the pairs went.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import onnx
import torch
from torch.utils.data import TensorDataset

from edgekd._io import write_json
from edgekd.backends import onnxruntime as ortb
from edgekd.export import export_onnx
from edgekd.latency.measure import interleaved
from edgekd.quant.ort_layout import fusion_report, quantize_for_ort
from edgekd.quant.ort_qat import OrtQdq, drop_pre_relu_pairs, export_ort

ROOT = Path(__file__).resolve().parents[1]


def build(name: str, size: int, d: Path) -> tuple[dict[str, Path], int]:
    import timm

    shape = (3, size, size)
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False).eval()
    calib = TensorDataset(torch.randn(32, *shape), torch.zeros(32, dtype=torch.long))
    fp32 = export_onnx(model, d / "fp32.onnx", shape).path
    qdq = quantize_for_ort(fp32, d / "qdq.onnx", calib, 8, keep_activations=True)
    with_pairs = onnx.load(str(qdq))
    without = onnx.load(str(qdq))
    dropped = drop_pre_relu_pairs(without)
    files = {"fp32": fp32,
             "int8-with-pre-relu-pairs": export_ort(OrtQdq(with_pairs).eval(), d / "with.onnx"),
             "int8-shipped": export_ort(OrtQdq(without).eval(), d / "without.onnx")}  # fmt: skip
    return files, dropped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/relu_fusion.json")
    args = ap.parse_args()
    t0, load = time.perf_counter(), [os.getloadavg()[0]]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        files, dropped = build(args.model, args.size, Path(d))
        kinds = list(files)
        ops = {k: fusion_report(p)["op_counts"] for k, p in files.items()}
        for threads in args.threads:
            def once(i: int, _round: int, threads=threads) -> float:
                return ortb.profile(files[kinds[i]], (3, args.size, args.size), threads=threads,
                                    warmup=5, iters=args.iters).p50_ms  # fmt: skip

            times = dict(zip(kinds, interleaved(len(kinds), args.rounds, once), strict=True))
            for k in kinds:
                ratios = [f / t for f, t in zip(times["fp32"], times[k], strict=True)]
                rows.append({"threads": threads, "artifact": k,
                             "p50_ms": statistics.median(times[k]), "rounds_ms": times[k],
                             "speedup_vs_fp32": statistics.median(ratios),
                             "speedup_range": [min(ratios), max(ratios)]})  # fmt: skip
                print(f"{args.model} {args.size}px {threads}t {k:25s} p50 "
                      f"{rows[-1]['p50_ms']:7.3f} ms  x{rows[-1]['speedup_vs_fp32']:.2f} vs fp32 "
                      f"[{min(ratios):.2f}-{max(ratios):.2f}]", flush=True)  # fmt: skip
            gain = [a / b for a, b in zip(times["int8-with-pre-relu-pairs"],
                                          times["int8-shipped"], strict=True)]  # fmt: skip
            rows.append({"threads": threads, "artifact": "gain (with / without)",
                         "ratio": statistics.median(gain), "range": [min(gain), max(gain)]})
            print(f"  {threads}t: without the pairs {statistics.median(gain):.3f}x faster "
                  f"[{min(gain):.3f}-{max(gain):.3f}]", flush=True)  # fmt: skip
    load.append(os.getloadavg()[0])
    write_json(args.out, {
        "command": f"python benchmarks/relu_fusion.py --model {args.model} --size {args.size} "
                   f"--threads {' '.join(map(str, args.threads))} --rounds {args.rounds} "
                   f"--iters {args.iters}",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "date": time.strftime("%Y-%m-%d"), "load_average_1min": load},
        "pairs_dropped": dropped, "optimized_op_counts": ops,
        "seconds": time.perf_counter() - t0, "rows": rows,
    })  # fmt: skip
    print(f"{dropped} pre-ReLU pairs dropped; wrote {args.out}")


if __name__ == "__main__":
    main()
