"""Precision per block (edgekd.quant.precision) against FP32 and all-INT8, in ONNX Runtime on
this machine; JSON written.

    python benchmarks/mixed_precision.py [--students resnet18 mobilenetv3_large_100
        mobilenetv3_small_050] [--sizes 32 224] [--threads 1] [--rounds 5]
        [--out benchmarks/results/mixed_precision.json]

Per student and input size: random-init timm weights (latency does not depend on them),
ONNX Runtime's INT8 graph calibrated by max on 64 random images (`ort_qat.ort_qdq_of`), the
per-block choice made exactly as the export stage makes it (`measured_precision`), then
FP32, all-INT8 and the chosen graph timed again in `--rounds` interleaved rounds (p50 of 30
runs after 5 warm-up, batch 1). Speed-ups are medians of the per-round ratios, with their
range. What ships is the faster of FP32 and the chosen graph (the validate stage).
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
from edgekd.export import export_onnx
from edgekd.latency.measure import interleaved
from edgekd.models import build_student
from edgekd.quant.ort_qat import export_ort, ort_qdq_of
from edgekd.quant.precision import measured_precision, p50_timer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", nargs="+",
                    default=["resnet18", "mobilenetv3_large_100",
                             "mobilenetv3_small_050"])  # fmt: skip
    ap.add_argument("--sizes", nargs="+", type=int, default=[32, 224])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path,
                    default=ROOT / "benchmarks/results/mixed_precision.json")  # fmt: skip
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for name in args.students:
            for size in args.sizes:
                t0 = time.perf_counter()
                shape = (3, size, size)
                model = build_student(name, 10, shape).eval()
                calib = TensorDataset(torch.randn(64, *shape), torch.zeros(64).long())
                q = ort_qdq_of(model, shape, calib, 16)
                all_int8 = export_ort(q, d / f"{name}-{size}-int8.onnx")
                choice = measured_precision(q, shape, threads=args.threads, rounds=args.rounds)
                chosen = export_ort(q, d / f"{name}-{size}-chosen.onnx")
                fp32 = export_onnx(model, d / f"{name}-{size}-fp32.onnx", shape).path
                timer = p50_timer([fp32, all_int8, chosen], args.threads, 5, 30, shape)
                t = interleaved(3, args.rounds, timer)

                def over_fp32(i: int, t=t) -> list[float]:
                    return [a / b for a, b in zip(t[0], t[i], strict=True)]

                row = {
                    "student": name, "size": size, "threads": args.threads,
                    "kept": choice.kept, "float_blocks": choice.float_blocks,
                    "blocks": len(choice.blocks), "cuts": choice.candidates,
                    "p50_ms": {k: statistics.median(v)
                               for k, v in zip(("fp32", "int8", "chosen"), t, strict=True)},
                    "rounds_ms": dict(zip(("fp32", "int8", "chosen"), t, strict=True)),
                    "int8_speedup": statistics.median(over_fp32(1)),
                    "chosen_speedup": statistics.median(over_fp32(2)),
                    "chosen_speedup_range": [min(over_fp32(2)), max(over_fp32(2))],
                    "choice_line": choice.line(),
                    "seconds": time.perf_counter() - t0,
                }  # fmt: skip
                rows.append(row)
                print(f"{name:22s} {size:4d}px: FP32 {row['p50_ms']['fp32']:.3f} ms, INT8 "
                      f"{row['int8_speedup']:.2f}x, chosen ({choice.kept}, "
                      f"{len(choice.float_blocks)}/{len(choice.blocks)} blocks float) "
                      f"{row['chosen_speedup']:.2f}x  ({row['seconds']:.0f}s)",
                      flush=True)  # fmt: skip
    write_json(args.out, {
        "command": "python benchmarks/mixed_precision.py --students " + " ".join(args.students)
        + " --sizes " + " ".join(map(str, args.sizes))
        + f" --threads {args.threads} --rounds {args.rounds}",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__, "load_avg": os.getloadavg()},
        "seconds": time.perf_counter() - t_all,
        "rows": rows,
    })  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
