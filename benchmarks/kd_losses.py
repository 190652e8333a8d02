"""Final INT8 accuracy per distillation loss: one teacher/student pair, every loss in
the registry plus cross-entropy only, 3 seeds each; mean and spread written to JSON.

    python benchmarks/kd_losses.py [--teacher PATH] [--student mobilenetv3_small_050]
                                   [--epochs 8] [--seeds 0 1 2] [--losses kd dkd ...]
                                   [--data digits|fashion-mnist] [--max-train N]
                                   [--out benchmarks/results/kd_losses[-DATA].json]

Recipe (the same for every loss): edgekd's trainer with its defaults (AdamW, one-cycle, lr
1e-2, batch 64, each loss with its registry defaults), the deterministic training transform
(so the teacher's outputs are cached), `--epochs` epochs, the best-val checkpoint; then INT8
post-training quantization with Model Optimizer (max calibration on 256 training images) and
top-1 of the FP32 and INT8 fake-quant models on the data's held-out split (digits: the 360
val images; Fashion-MNIST: the official 10k test set). The teacher is the example resnet18
trained 10 epochs on digits (examples/digits/train_teacher.py) unless --teacher is given.
Rows "kd+mixup" train that loss with `--kd-augment mixup` (MIX-KD's partial mixup; the
teacher then runs live on the mixed batches).
The JSON is rewritten after every run, so an interrupted benchmark keeps what it measured.
`--append` keeps the runs already in the output JSON (same data, subset, student, epochs and
a teacher with the same top-1) and adds the ones asked for, so a long benchmark can be run in
parts; `--hard` adds rows "LOSS+hard" (`--kd-augment hard`).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from edgekd._io import write_json
from edgekd.data import load_data
from edgekd.distill import TrainConfig, distill, evaluate_torch
from edgekd.distill.losses import list_losses
from edgekd.models import create_timm, load_teacher
from edgekd.quant import quantize_int8

ROOT = Path(__file__).resolve().parents[1]


def teacher_model(path: Path | None):
    if path is not None:
        return load_teacher(str(path)).module, str(path)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "train_teacher", ROOT / "examples/digits/train_teacher.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model, _, hist = mod.train("resnet18", epochs=10, lr=3e-3, batch_size=64, seed=0)
    return model, f"resnet18 trained 10 epochs here (val {hist[-1]['val_acc']:.2f}%)"


def bench_data(spec: str, max_train: int | None):
    """The benchmark's data at 3x32x32, training transform deterministic (teacher cached)."""
    return load_data(spec, (3, 32, 32), augment=False, max_train=max_train)


def distilled(student, teacher, data, cfg: TrainConfig) -> dict:
    """Distil `student` (in place: it ends at its best-val checkpoint) with the recipe of the
    module docstring; its FP32 and INT8 (PTQ, max) top-1 on the data's report split."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        res = distill(student, teacher, data, cfg, tmp)
        student.load_state_dict(torch.load(res.best_path, weights_only=True)["model"])
    train_s = time.perf_counter() - t0
    fp32_acc, _ = evaluate_torch(student, data.report_set)
    calib = data.calibration_subset(256, cfg.seed)
    q = quantize_int8(student, calib, batch_size=64, method="max")
    int8_acc, _ = evaluate_torch(q, data.report_set)
    return {
        "split": data.report_split,  # what fp32_top1 / int8_top1 are measured on
        "best_val_acc": res.best_val_acc,  # the checkpoint's selection figure
        "fp32_top1": fp32_acc,
        "int8_top1": int8_acc,
        "best_epoch": res.best_epoch,
        "train_s": train_s,
    }


def recipe(epochs: int, seed: int, loss: str = "kd", augment: str = "none") -> TrainConfig:
    return TrainConfig(epochs=epochs, lr=1e-2, batch_size=64, seed=seed, loss=loss,
                       kd_augment=augment)  # fmt: skip


def one_run(loss: str, seed: int, args, data, teacher) -> dict:
    torch.manual_seed(seed)
    student = create_timm(args.student, data.num_classes)
    name, _, augment = loss.partition("+")  # "kd+mixup": the loss with --kd-augment mixup
    cfg = recipe(args.epochs, seed, name, augment or "none")
    return {"loss": loss, "seed": seed} | distilled(student, teacher, data, cfg)


def command(args) -> str:
    return ("python benchmarks/kd_losses.py --epochs "
            f"{args.epochs} --seeds {' '.join(map(str, args.seeds))} --data {args.data}"
            + (f" --max-train {args.max_train}" if args.max_train else "")
            + (f" --teacher {args.teacher}" if args.teacher else "")
            + (f" --losses {' '.join(args.losses)}" if args.losses else "")
            + f" --mixup {' '.join(args.mixup)}"
            + (f" --hard {' '.join(args.hard)}" if args.hard else "")
            + (" --append" if args.append else ""))  # fmt: skip


def earlier_runs(out: Path, args, train_images: int, teacher_acc: float) -> list[dict]:
    """The runs already in `out` when they are of this recipe (else none, and it says why)."""
    if not out.exists():
        return []
    old = json.loads(out.read_text())
    same = {"data": args.data, "train_images": train_images, "student": args.student,
            "epochs": args.epochs}  # fmt: skip
    differs = [k for k, v in same.items() if old.get(k) != v]
    if abs(old.get("teacher_top1", -1) - teacher_acc) > 1e-6:
        differs.append(f"teacher top-1 {old.get('teacher_top1')} vs {teacher_acc}")
    if differs:
        print(f"--append: not keeping {out}'s runs, another recipe ({', '.join(differs)})")
        return []
    print(f"--append: keeping {len(old['runs'])} runs of {out}")
    return old["runs"]


def accuracy_stats(runs: list[dict]) -> dict:
    """The INT8 and FP32 top-1 of `runs` (one row per seed): mean, spread, range."""
    acc = [r["int8_top1"] for r in runs]
    fp = [r["fp32_top1"] for r in runs]
    return {
        "seeds": len(acc),
        "int8_mean": statistics.fmean(acc),
        "int8_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
        "int8_min": min(acc),
        "int8_max": max(acc),
        "fp32_mean": statistics.fmean(fp),
    }


def summarize(runs: list[dict]) -> list[dict]:
    return [{"loss": loss} | accuracy_stats([r for r in runs if r["loss"] == loss])
            for loss in dict.fromkeys(r["loss"] for r in runs)]  # fmt: skip


def bench_args(ap: argparse.ArgumentParser, epochs: int = 8) -> None:
    """The arguments every distil-and-measure benchmark takes (this one, born_again.py)."""
    ap.add_argument("--teacher", type=Path, default=None)
    ap.add_argument("--data", default="digits", help="digits or fashion-mnist[:PATH], ...")
    ap.add_argument("--max-train", type=int, default=None, help="stratified training subset")
    ap.add_argument("--student", default="mobilenetv3_small_050")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())


def default_out(stem: str, data: str) -> Path:
    """benchmarks/results/STEM.json on digits, STEM-DATA.json on another data source."""
    name = f"{stem}.json" if data == "digits" else f"{stem}-{data.split(':')[0]}.json"
    return ROOT / "benchmarks/results" / name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench_args(ap)
    ap.add_argument("--losses", nargs="+", default=None)
    ap.add_argument("--mixup", nargs="*", default=["kd", "mixstd"],
                    help="losses also run with --kd-augment mixup (rows 'kd+mixup', ...)")
    ap.add_argument("--hard", nargs="*", default=[],
                    help="losses also run with --kd-augment hard (rows 'kd+hard', ...)")
    ap.add_argument("--append", action="store_true",
                    help="keep the output JSON's runs of the same recipe; add these")
    ap.add_argument("--out", type=Path, default=None,
                    help="default benchmarks/results/kd_losses[-DATA].json")  # fmt: skip
    args = ap.parse_args()
    out = args.out or default_out("kd_losses", args.data)
    torch.set_num_threads(args.threads)
    losses = list(args.losses or ["ce"] + [n for n in list_losses() if n != "ce"])
    losses += [f"{n}+mixup" for n in args.mixup] + [f"{n}+hard" for n in args.hard]
    teacher, teacher_desc = teacher_model(args.teacher)
    data = bench_data(args.data, args.max_train)
    teacher_acc, _ = evaluate_torch(teacher, data.report_set)
    runs: list[dict] = earlier_runs(out, args, len(data.train), teacher_acc) if args.append else []
    commands = [json.loads(out.read_text())["command"]] if runs else []
    done = {(r["loss"], r["seed"]) for r in runs}
    for loss in losses:
        for seed in args.seeds:
            if (loss, seed) in done:
                continue
            r = one_run(loss, seed, args, data, teacher)
            runs.append(r)
            print(
                f"{loss:12s} seed {seed}: {data.report_split} fp32 {r['fp32_top1']:.2f}%  int8 "
                f"{r['int8_top1']:.2f}%  ({r['train_s']:.0f} s)",
                flush=True,
            )
            write_json(
                out,
                {
                    "command": " && ".join([*commands, command(args)]),
                    "data": args.data,
                    "train_images": len(data.train),
                    "accuracy_split": data.report_split,
                    "accuracy_images": len(data.report_set),
                    "machine": {
                        "platform": platform.platform(),
                        "torch": torch.__version__,
                        "threads": args.threads,
                    },
                    "teacher": teacher_desc,
                    "teacher_top1": teacher_acc,
                    "student": args.student,
                    "epochs": args.epochs,
                    "runs": runs,
                    "summary": summarize(runs),
                },
            )
    print(
        f"\nteacher {teacher_desc}: {teacher_acc:.2f}%; student {args.student}, "
        f"{args.epochs} epochs, INT8 PTQ (max), top-1 on {data.report_split} "
        f"({len(data.report_set)} images)"
    )
    print(f"{'loss':8s} {'int8 mean':>10s} {'std':>6s} {'min':>7s} {'max':>7s} {'fp32':>7s}")
    for row in summarize(runs):
        print(
            f"{row['loss']:8s} {row['int8_mean']:10.2f} {row['int8_std']:6.2f} "
            f"{row['int8_min']:7.2f} {row['int8_max']:7.2f} {row['fp32_mean']:7.2f}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
