"""Distillation throughput with 1 and N processes under torchrun (DDP), same global batch.

    python benchmarks/ddp_scaling.py [--procs 1 2] [--teacher timm:resnet18] [--epochs 3]
        [--student mobilenetv3_small_050] [--batch-size 64] [--device cpu|cuda]
        [--out benchmarks/results/ddp_scaling.json]

Each run is edgekd's own worker (`python -m torch.distributed.run --nproc-per-node N -m
edgekd.distill.ddp SPEC`), gloo on CPUs and NCCL on GPUs, on the built-in digits data with
random augmentation (the teacher runs live). Steps/second per run = training steps per epoch /
epoch seconds, median over the epochs after the first (epoch seconds include the validation
pass, the same work in every run). On a multi-GPU machine pass --device cuda --procs 1 2 4 8.
OMP_NUM_THREADS is set to cores / N so the N processes share the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from edgekd._io import write_json
from edgekd.config import CompressConfig
from edgekd.distill import TrainConfig
from edgekd.distill.ddp import launch_command

ROOT = Path(__file__).resolve().parents[1]


def run(n: int, args, tmp: Path) -> dict:
    cfg = CompressConfig(teacher=args.teacher, data="digits", student=args.student,
                         batch_size=args.batch_size, out=tmp / f"run{n}")  # fmt: skip
    train = TrainConfig(epochs=args.epochs, lr=1e-2, batch_size=args.batch_size, seed=0,
                        device=args.device)  # fmt: skip
    from dataclasses import asdict

    spec = {
        "config": cfg.model_dump(mode="json"),
        "student": args.student,
        "train": asdict(train),
        "device": args.device,
        "ckpt_dir": str(tmp / f"ckpt{n}"),
        "resume": False,
        "key": f"bench{n}",
        "result": str(tmp / f"result{n}.json"),
    }
    spec_path = tmp / f"spec{n}.json"
    spec_path.write_text(json.dumps(spec))
    threads = max(1, (os.cpu_count() or 1) // n)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.run(launch_command(spec_path, n), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{n} processes failed: {proc.stderr[-600:]}")
    result = json.loads((tmp / f"result{n}.json").read_text())
    steps = math.ceil(1437 / args.batch_size)
    secs = [r["seconds"] for r in result["history"]][1:] or [result["history"][0]["seconds"]]
    return {
        "processes": n,
        "threads_per_process": threads,
        "steps_per_epoch": steps,
        "epoch_seconds_median": statistics.median(secs),
        "steps_per_second": steps / statistics.median(secs),
        "wall_s": wall,
        "loss_curve": [
            {k: v for k, v in r.items() if k.startswith("loss") or k == "val_acc"}
            for r in result["history"]
        ],  # fmt: skip
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--teacher", default="timm:resnet18")
    ap.add_argument("--student", default="mobilenetv3_small_050")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/ddp_scaling.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run(n, args, Path(tmp)) for n in args.procs]
    base = rows[0]["steps_per_second"]
    print(f"{args.teacher} -> {args.student}, digits, global batch {args.batch_size}, "
          f"{args.device}, {os.cpu_count()} cores")  # fmt: skip
    print(f"{'procs':>5s} {'threads/proc':>12s} {'steps/s':>8s} {'speed-up':>9s} {'wall s':>7s}")
    for r in rows:
        r["speedup"] = r["steps_per_second"] / base
        print(f"{r['processes']:5d} {r['threads_per_process']:12d} {r['steps_per_second']:8.2f} "
              f"{r['speedup']:8.2f}x {r['wall_s']:7.1f}")  # fmt: skip
    write_json(args.out, {
        "command": "python benchmarks/ddp_scaling.py --procs "
        + " ".join(map(str, args.procs)) + f" --epochs {args.epochs} --device {args.device}",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__},  # fmt: skip
        "teacher": args.teacher, "student": args.student, "global_batch": args.batch_size,
        "rows": rows,
    })  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
