"""A finished `edgekd compress` run against the same student trained on labels only.

    python benchmarks/vs_labels.py RUN_DIR --teacher T --data D [--max-train N] [--epochs E]

peers.py trains and measures every row itself, which at full size (Fashion-MNIST's 55,000
images, 20 epochs) is hours on a CPU. This script takes an edgekd run already made with those
settings (its RUN_DIR) and adds what the issue's checks need beside it, with peers.py's own
definitions: the teacher (RUN_DIR/export/teacher.onnx) and the shipped artifact measured again
in this process, the labels-only student (the run's student, cross-entropy, the same data and
epochs) in FP32 and with ONNX Runtime's static INT8, and `peers.checks` on those rows. The
teacher row's wall time is its training time, from the JSON beside T when there is one. Give
the same --data, --max-train and --epochs the run used. Writes
benchmarks/results/vs_labels-<data>.json unless --out says otherwise.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from peers import ROOT, checks, labels_only_onnx, ort_static_int8, row, teacher_file

from edgekd._io import write_json
from edgekd.data import load_data, stack_inputs
from edgekd.models import load_teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--teacher", type=Path, required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-train", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=20, help="the run's distill epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    report = json.loads((args.run_dir / "report.json").read_text())
    out_path = args.out or ROOT / f"benchmarks/results/vs_labels-{args.data.split(':')[0]}.json"
    _, teacher_desc, teacher_train_s = teacher_file(args.teacher, Path())
    loaded = load_teacher(str(args.teacher))
    data = load_data(args.data, loaded.input_shape, max_train=args.max_train)
    print(f"{data.name}: {len(data.train)} train; accuracy on {data.report_split} "
          f"({len(data.report_set)} images)", flush=True)  # fmt: skip
    y = stack_inputs(data.report_set)[1].numpy()
    rows = []
    t_row, t_pred = row("teacher-fp32", args.run_dir / "export/teacher.onnx", teacher_train_s,
                        data, y, None, args.threads)  # fmt: skip
    ek, _ = row("edgekd", args.run_dir / report["artifact"]["path"], report["wall_s"], data, y,
                t_pred, args.threads)  # fmt: skip
    ek.update(student=report["student"]["name"], precision=report["artifact"]["precision"])
    rows += [t_row, ek]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        fp32 = labels_only_onnx(ek["student"], loaded.module.eval(), data, args.epochs, tmp)
        train_s = time.perf_counter() - t0
        rows.append(row("student-labels-fp32", fp32, train_s, data, y, t_pred, args.threads)[0])
        t0 = time.perf_counter()
        int8 = ort_static_int8(fp32, tmp / "student-labels-int8.onnx",
                               data.calibration_subset(256, 0))  # fmt: skip
        rows.append(row("student-labels-int8", int8, train_s + time.perf_counter() - t0, data,
                        y, t_pred, args.threads)[0])  # fmt: skip
    result = {
        "command": "python benchmarks/vs_labels.py " + " ".join(
            [str(args.run_dir), "--teacher", str(args.teacher), "--data", args.data]
            + (["--max-train", str(args.max_train)] if args.max_train else [])
            + ["--epochs", str(args.epochs), "--threads", str(args.threads)]),
        "machine": {"platform": platform.platform(), "torch": torch.__version__,
                    "threads": args.threads},
        "teacher": teacher_desc,
        "run_dir": str(args.run_dir),
        "run_verdict": report["verdict"],
        "data": args.data, "max_train": args.max_train, "epochs": args.epochs,
        "train_images": len(data.train), "accuracy_split": data.report_split,
        "rows": rows,
        "checks": checks(rows),
    }  # fmt: skip
    write_json(out_path, result)
    print(json.dumps(result["checks"], indent=1))
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
