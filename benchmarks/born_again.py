"""Born-Again distillation measured (Furlanello et al. 2018; `--generations N`, `--born-again-
teacher last|ensemble`): a chain of generations of one student, each taught by the one before
(`last`) or by the averaged prediction of all earlier ones (`ensemble`), several seeds; the FP32
and INT8 top-1 of every generation.

    python benchmarks/born_again.py [--teacher PATH] [--data digits|fashion-mnist] [--max-train N]
        [--student mobilenetv3_small_050] [--generations 4] [--epochs 8] [--seeds 0 1 2]
        [--out benchmarks/results/born_again[-DATA].json]

Recipe: benchmarks/kd_losses.py's (edgekd's trainer with its defaults, loss kd, the teacher's
outputs cached, the best-val checkpoint, INT8 by Model Optimizer PTQ with max calibration on 256
training images, top-1 on the data's held-out split). Generation g's student is initialised
with seed + g - 1, as the compress pipeline does, so generation 1 is kd_losses.py's `kd` run of
the same seed. Generation 2 is taught by generation 1 in both chains (an ensemble of one
generation is that generation), so it is trained once and shared; the chains part from
generation 3 on. The ensemble teacher is edgekd.distill.ensemble.EnsembleTeacher, the one
`--born-again-teacher ensemble` uses. The JSON is rewritten after every generation.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from edgekd._io import write_json
from edgekd.distill import evaluate_torch
from edgekd.distill.ensemble import EnsembleTeacher
from edgekd.models import create_timm


def chain(teacher, data, args, seed: int, done: list[dict], save) -> None:
    """Every generation of both chains for one seed, appended to `done` (one row each)."""
    from kd_losses import distilled, recipe  # benchmarks/ is on sys.path as a script

    cfg = recipe(args.epochs, seed)
    gens: dict[str, list] = {}  # chain -> its generations' students, in order

    def generation(mode: str, g: int, by) -> torch.nn.Module:
        torch.manual_seed(seed + g - 1)
        student = create_timm(args.student, data.num_classes)
        row = {"chain": mode, "generation": g, "seed": seed} | distilled(student, by, data, cfg)
        done.append(row)
        print(f"seed {seed} {mode:8s} generation {g}: {row['split']} fp32 "
              f"{row['fp32_top1']:.2f}%  int8 {row['int8_top1']:.2f}%  "
              f"({row['train_s']:.0f} s)", flush=True)  # fmt: skip
        save()
        return student.eval()

    first = generation("shared", 1, teacher)
    second = generation("shared", 2, first)
    for mode in ("last", "ensemble"):
        gens[mode] = [first, second]
        for g in range(3, args.generations + 1):
            members = gens[mode]
            by = members[-1] if mode == "last" else EnsembleTeacher(list(members)).eval()
            gens[mode].append(generation(mode, g, by))


def summarize(runs: list[dict], generations: int) -> list[dict]:
    from kd_losses import accuracy_stats  # benchmarks/ is on sys.path as a script

    rows = []
    for mode in ("last", "ensemble"):
        for g in range(1, generations + 1):
            want = "shared" if g <= 2 else mode
            of = [r for r in runs if r["chain"] == want and r["generation"] == g]
            if not of:
                continue
            fp = [r["fp32_top1"] for r in of]
            rows.append({"chain": mode, "generation": g} | accuracy_stats(of)
                        | {"fp32_std": statistics.stdev(fp) if len(fp) > 1 else 0.0})
    return rows


def main() -> None:
    from kd_losses import bench_args, bench_data, default_out, teacher_model  # on sys.path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench_args(ap)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None,
                    help="default benchmarks/results/born_again[-DATA].json")  # fmt: skip
    args = ap.parse_args()
    if args.generations < 3:
        raise SystemExit("--generations must be at least 3: the chains part from generation 3")
    out = args.out or default_out("born_again", args.data)
    torch.set_num_threads(args.threads)
    teacher, teacher_desc = teacher_model(args.teacher)
    data = bench_data(args.data, args.max_train)
    teacher_acc, _ = evaluate_torch(teacher, data.report_set)
    runs: list[dict] = []
    t0 = time.perf_counter()

    def save() -> None:
        write_json(out, {
            "command": "python benchmarks/born_again.py " + " ".join(
                [f"--data {args.data}", f"--generations {args.generations}",
                 f"--epochs {args.epochs}", f"--student {args.student}",
                 "--seeds " + " ".join(map(str, args.seeds))]
                + ([f"--max-train {args.max_train}"] if args.max_train else [])
                + ([f"--teacher {args.teacher}"] if args.teacher else [])),
            "data": args.data, "train_images": len(data.train),
            "accuracy_split": data.report_split, "accuracy_images": len(data.report_set),
            "machine": {"platform": platform.platform(), "torch": torch.__version__,
                        "threads": args.threads},
            "teacher": teacher_desc, "teacher_top1": teacher_acc, "student": args.student,
            "epochs": args.epochs, "generations": args.generations,
            "seconds": time.perf_counter() - t0,
            "runs": runs, "summary": summarize(runs, args.generations),
        })  # fmt: skip

    for seed in args.seeds:
        chain(teacher, data, args, seed, runs, save)
    print(f"\nteacher {teacher_desc}: {teacher_acc:.2f}%; student {args.student}, "
          f"{args.epochs} epochs per generation, top-1 on {data.report_split}")  # fmt: skip
    print(f"{'chain':9s} {'gen':>3s} {'int8 mean':>10s} {'std':>6s} {'fp32 mean':>10s}")
    for r in summarize(runs, args.generations):
        print(f"{r['chain']:9s} {r['generation']:3d} {r['int8_mean']:10.2f} "
              f"{r['int8_std']:6.2f} {r['fp32_mean']:10.2f}")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
