"""Time per training step: plain student training vs KD with a live teacher vs KD with the
teacher's outputs cached (edgekd's trainer, the same student, data and batch size).

    python benchmarks/kd_step.py [--threads 2] [--teacher resnet18]
        [--student mobilenetv3_small_050] [--epochs 3] [--out benchmarks/results/kd_step.json]

The built-in digits data at 3x32x32 with a deterministic training transform (--no-augment in
the CLI), so the cache applies. Each mode trains `--epochs` epochs with `distill()`; the step
time is the median over the steps of every epoch after the first (warm), taken from the
trainer's per-step callback, so validation and the one-off cache build are not in it (the
cache build is reported on its own). Weights are random: step time does not depend on them.
Goal (issue 5): KD with the cache within 1.3x of plain training.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from edgekd._io import write_json
from edgekd.data.digits import digits_bundle
from edgekd.distill import TrainConfig, distill
from edgekd.models import create_timm

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "plain (ce, no teacher)": {"loss": "ce", "teacher_cache": "off"},
    "kd, live teacher": {"loss": "kd", "teacher_cache": "off"},
    "kd, cached teacher": {"loss": "kd", "teacher_cache": "memory"},
}


class _NoTeacher(torch.nn.Module):
    """Stands in for the teacher in plain training: returns zeros, costs nothing."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], self.num_classes)


def time_mode(name: str, opts: dict, args, data, teacher) -> dict:
    stamps: list[tuple[int, float]] = []
    cfg = TrainConfig(epochs=args.epochs, lr=5e-3, batch_size=args.batch_size, seed=0, **opts)
    torch.manual_seed(0)
    student = create_timm(args.student, data.num_classes)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = distill(
            student,
            teacher if opts["loss"] != "ce" else _NoTeacher(data.num_classes),
            dataclasses.replace(data),
            cfg,
            tmp,
            on_step=lambda e, s, n: stamps.append((e, time.perf_counter())),
        )
    wall = time.perf_counter() - t0
    steps = [b - a for (ea, a), (eb, b) in zip(stamps, stamps[1:], strict=False) if ea == eb >= 1]
    first_step = stamps[0][1] - t0
    return {
        "mode": name,
        "median_step_ms": statistics.median(steps) * 1e3,
        "p90_step_ms": sorted(steps)[int(0.9 * (len(steps) - 1))] * 1e3,
        "timed_steps": len(steps),
        "teacher": res.teacher_cache,
        "setup_s": first_step,  # includes the one-off cache build for the cached mode
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--teacher", default="resnet18")
    ap.add_argument("--student", default="mobilenetv3_small_050")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/kd_step.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = digits_bundle(augment=False)
    torch.manual_seed(1)
    teacher = create_timm(args.teacher, data.num_classes)
    rows = [time_mode(n, o, args, data, teacher) for n, o in MODES.items()]
    plain = rows[0]["median_step_ms"]
    for r in rows:
        r["vs_plain"] = r["median_step_ms"] / plain
    print(
        f"{args.teacher} -> {args.student}, digits 3x32x32, batch {args.batch_size}, "
        f"{args.threads} threads, {platform.processor() or platform.machine()}"
    )
    print(f"{'mode':26s} {'step ms (median)':>17s} {'p90':>8s} {'vs plain':>9s} {'setup s':>8s}")
    for r in rows:
        print(
            f"{r['mode']:26s} {r['median_step_ms']:17.1f} {r['p90_step_ms']:8.1f} "
            f"{r['vs_plain']:8.2f}x {r['setup_s']:8.2f}"
        )
    cached = rows[2]["vs_plain"]
    print(
        f"goal: cached KD within 1.3x of plain: {'met' if cached <= 1.3 else 'MISSED'} "
        f"({cached:.2f}x)"
    )
    write_json(
        args.out,
        {
            "command": "python benchmarks/kd_step.py "
            + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
            "machine": {
                "platform": platform.platform(),
                "cpu_count": __import__("os").cpu_count(),
                "torch": torch.__version__,
            },
            "teacher": args.teacher,
            "student": args.student,
            "threads": args.threads,
            "batch_size": args.batch_size,
            "rows": rows,
            "goal_cached_within_1_3x": cached <= 1.3,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
