"""edgekd side by side with what a user would do instead, on the same teacher, data, machine
and thread count, in one run; one table printed, JSON written.

    python benchmarks/peers.py [--data digits] [--teacher PATH] [--threads 1]
        [--epochs 20] [--out benchmarks/results/peers-digits.json]

Rows:
1. teacher-fp32: the teacher's FP32 ONNX in ONNX Runtime (the reference);
2. teacher-ort-int8: ONNX Runtime's own static INT8 of the teacher (quant_pre_process, then
   quantize_static: Q/DQ, per-channel weights, its default calibration) on the calibration
   subset edgekd uses (256 training images, seed 0, eval transform);
3. teacher-modelopt-int8: NVIDIA Model Optimizer INT8 PTQ of the teacher (max calibration,
   same images) exported to Q/DQ ONNX, run in ONNX Runtime;
4. student-labels-int8: the student edgekd's `auto` picks, trained on labels only
   (cross-entropy, same epochs, optimiser and augmentation as edgekd), then ONNX Runtime's
   static INT8 as in row 2;
5. edgekd: `edgekd compress` with default settings (its shipped artifact).

For each: top-1 on the val set from the ONNX artifact in ONNX Runtime, top-1 agreement with the
teacher's ONNX, host latency p50/p90 (batch 1, --threads threads, 50 warm-up, 300 runs, all
rows timed in this process one after another), latency predicted for jetson-orin-nano-8gb and
raspberry-pi-5 by edgekd's cost model (the ONNX's own precisions: Q/DQ layers INT8, the
rest FP32), size on disk, and wall time to produce it. With
--data any dataset edgekd accepts runs unchanged (a folder, or pkg.module:fn).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from edgekd._io import write_json
from edgekd.backends import onnxruntime as ortb
from edgekd.config import CompressConfig
from edgekd.data import load_data, stack_inputs
from edgekd.distill import TrainConfig, distill
from edgekd.export import export_onnx
from edgekd.latency.cost import predict_latency
from edgekd.models import create_timm, load_teacher
from edgekd.pipeline.compress import compress
from edgekd.quant import quantize_int8
from edgekd.quant.ort_layout import _Reader
from edgekd.targets import get_target

ROOT = Path(__file__).resolve().parents[1]
PREDICT_ON = ("jetson-orin-nano-8gb", "raspberry-pi-5")


def ort_static_int8(float_onnx: Path, out: Path, calib) -> Path:
    from onnxruntime.quantization import QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(float_onnx), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), _Reader(calib, "input", 32),
                    quant_format=QuantFormat.QDQ, per_channel=True)  # fmt: skip
    return out


def row(name: str, path: Path, seconds: float, data, y, t_pred, threads: int) -> dict:
    pred = ortb.predict(path, data.val, threads=threads).argmax(1)
    lat = ortb.profile(path, data.input_shape, threads=threads, warmup=50, iters=300)
    out = {
        "row": name,
        "artifact": path.name,
        "top1": float((pred == y).mean() * 100),
        "agreement_with_teacher": float((pred == t_pred).mean() * 100)
        if t_pred is not None
        else 100.0,
        "host_p50_ms": lat.p50_ms,
        "host_p90_ms": lat.p90_ms,
        "size_mb": path.stat().st_size / 1e6,
        "wall_s": seconds,
    }
    for t in PREDICT_ON:
        target = get_target(t)
        prec = "int8" if "int8" in name or "edgekd" in name and "int8" in path.name else None
        out[f"predicted_{t}_ms"] = predict_latency(
            path, target, prec if t.startswith("jetson") else None
        ).total_ms
    return out, pred


def teacher_file(arg: Path | None, tmp: Path) -> tuple[Path, str, float]:
    if arg is not None:
        return arg, str(arg), 0.0
    import importlib.util

    from edgekd.models import save_checkpoint

    spec = importlib.util.spec_from_file_location(
        "train_teacher", ROOT / "examples/digits/train_teacher.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t0 = time.perf_counter()
    model, data, hist = mod.train("resnet18", epochs=10, lr=3e-3, batch_size=64, seed=0)
    path = tmp / "teacher.pt"
    save_checkpoint(path, model, "resnet18", data.num_classes, data.input_shape)
    return path, f"resnet18 trained 10 epochs here (val {hist[-1]['val_acc']:.2f}%)", (
        time.perf_counter() - t0)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="digits")
    ap.add_argument("--teacher", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=20, help="edgekd's default distill epochs")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/peers-digits.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tpath, tdesc, teacher_train_s = teacher_file(args.teacher, tmp)
        loaded = load_teacher(str(tpath))
        data = load_data(args.data, loaded.input_shape)
        _, labels = stack_inputs(data.val)
        y = labels.numpy()
        calib = data.calibration_subset(256, 0)
        teacher = loaded.module.eval()

        t0 = time.perf_counter()
        t_onnx = export_onnx(teacher, tmp / "teacher.onnx", data.input_shape).path
        r, t_pred = row("teacher-fp32", t_onnx, time.perf_counter() - t0, data, y, None,
                        args.threads)  # fmt: skip
        rows.append(r)

        t0 = time.perf_counter()
        path = ort_static_int8(t_onnx, tmp / "teacher-ort-int8.onnx", calib)
        rows.append(row("teacher-ort-int8", path, time.perf_counter() - t0, data, y, t_pred,
                        args.threads)[0])  # fmt: skip

        t0 = time.perf_counter()
        q = quantize_int8(load_teacher(str(tpath)).module.eval(), calib, 64, method="max")
        path = export_onnx(q, tmp / "teacher-modelopt-int8.onnx", data.input_shape).path
        rows.append(row("teacher-modelopt-int8", path, time.perf_counter() - t0, data, y,
                        t_pred, args.threads)[0])  # fmt: skip

        t0 = time.perf_counter()
        result = compress(CompressConfig(teacher=str(tpath), data=args.data, out=tmp / "edgekd",
                                         threads=args.threads, epochs=args.epochs))  # fmt: skip
        art = result.report["artifact"]
        path = result.run_dir / art["path"]
        r = row(f"edgekd ({art['precision']})", path, time.perf_counter() - t0, data, y, t_pred,
                args.threads)[0]  # fmt: skip
        r["student"] = result.report["student"]["name"]
        rows.append(r)

        t0 = time.perf_counter()
        student_name = result.report["student"]["name"]  # the same student, trained on labels
        torch.manual_seed(0)
        student = create_timm(student_name, data.num_classes)
        cfg = TrainConfig(epochs=args.epochs, lr=1e-2, seed=0, loss="ce")
        res = distill(student, teacher, data, cfg, tmp / "ce")
        student.load_state_dict(torch.load(res.best_path, weights_only=True)["model"])
        s_onnx = export_onnx(student.eval(), tmp / "student-ce.onnx", data.input_shape).path
        path = ort_static_int8(s_onnx, tmp / "student-labels-int8.onnx", calib)
        rows.append(row("student-labels-int8", path, time.perf_counter() - t0, data, y, t_pred,
                        args.threads)[0])  # fmt: skip

    teacher_top1 = rows[0]["top1"]
    near = [r for r in rows if teacher_top1 - r["top1"] <= 1.0]
    fastest = min(near, key=lambda r: r["host_p90_ms"])["row"] if near else None
    hdr = (f"{'row':24s} {'top1':>6s} {'agree':>6s} {'p50 ms':>8s} {'p90 ms':>8s} "
           f"{'orin ms':>8s} {'pi5 ms':>8s} {'MB':>7s} {'wall s':>7s}")  # fmt: skip
    print(f"teacher {tdesc}; data {args.data}; {args.threads} thread(s); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores")  # fmt: skip
    print(hdr)
    for r in rows:
        print(f"{r['row']:24s} {r['top1']:6.2f} {r['agreement_with_teacher']:6.2f} "
              f"{r['host_p50_ms']:8.3f} {r['host_p90_ms']:8.3f} "
              f"{r['predicted_jetson-orin-nano-8gb_ms']:8.3f} "
              f"{r['predicted_raspberry-pi-5_ms']:8.3f} {r['size_mb']:7.2f} "
              f"{r['wall_s']:7.1f}")  # fmt: skip
    print(f"fastest at p90 among rows within 1 point of the teacher: {fastest}")
    write_json(
        args.out,
        {
            "command": f"python benchmarks/peers.py --data {args.data} --threads {args.threads}"
            f" --epochs {args.epochs}",
            "machine": {
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "processor": platform.processor(),
                "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d"),
            },  # fmt: skip
            "teacher": tdesc,
            "teacher_train_s": teacher_train_s,
            "data": args.data,
            "threads": args.threads,
            "latency": "ONNX Runtime CPU, batch 1, 50 warm-up, 300 runs; predictions from "
            "edgekd's cost model (not measured)",
            "rows": rows,
            "fastest_within_1pt_of_teacher": fastest,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
