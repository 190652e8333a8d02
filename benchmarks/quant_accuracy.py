"""INT8 accuracy per student and quantization recipe: FP32, PTQ with max / entropy /
percentile calibration, and QAT (with KD), each measured on the exported Q/DQ ONNX in ONNX
Runtime (the artifact, not the torch model); JSON written.

    python benchmarks/quant_accuracy.py [--students mobilenetv3_small_050 lcnet_050 resnet10t]
        [--epochs 8] [--qat-epochs 2] [--out benchmarks/results/quant_accuracy.json]

Per student: KD from the example resnet18 teacher (10 epochs, examples/digits/train_teacher.py)
with edgekd's trainer (kd loss, teacher cached: no augmentation), best-val FP32 checkpoint;
then Model Optimizer INT8 (256 calibration images, seed 0) with each calibration method, and
QAT for --qat-epochs epochs (lr 1e-4, cosine, KD) starting from max calibration. Every model
is exported to ONNX (Q/DQ for INT8) and its top-1 on the held-out split (digits: 360 val
images; Fashion-MNIST: the official 10k test set; --data, --max-train, --teacher) is taken from ONNX
Runtime; the torch fake-quant accuracy and the top-1 agreement between the two are listed too.
(Until 04679cf, every Model Optimizer recipe was also re-quantized into the "old ORT layout",
ORT's placement after BatchNorm folding with the fake-quant model's input ranges, which edgekd
shipped for ONNX Runtime targets then; the committed JSON files' `ort_layout_*` columns come
from that script. The ORT rows below replaced it in the pipeline.)

`ort-ptq`, `ort-qat` and `ort-qat-lsq` are what edgekd ships for ONNX Runtime targets now:
ONNX Runtime's own Q/DQ graph (BatchNorm folded, ORT's placement, max calibration) trained as a
torch module (`edgekd.quant.ort_qat`): calibration alone, QAT with fixed ranges, and QAT with
learned (LSQ) ranges. The file measured is written from the trained module, nothing
re-calibrated; its agreement is with that module.

`ptq-max` and `qat` quantize each residual Add's skip input (`edgekd.quant.residual`, what
TensorRT needs to fuse the Add into its convolution); `ptq-max-float-adds` and
`qat-float-adds` are the same recipes with the Adds left in float, to show what the residual
quantizers cost in accuracy. `--recipes` picks a subset (entropy calibration is slow on a CPU).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from edgekd._io import write_json
from edgekd.backends import onnxruntime as ortb
from edgekd.data import stack_inputs
from edgekd.distill import TrainConfig, distill, evaluate_torch
from edgekd.export import export_onnx
from edgekd.models import create_timm
from edgekd.quant import quantize_int8
from edgekd.quant.ort_qat import export_ort, ort_qdq_of

# recipe -> (calibration method, QAT after it, residual Adds quantized)
RECIPES = {
    "fp32": (None, False, False),
    "ptq-max": ("max", False, True),
    "ptq-max-float-adds": ("max", False, False),
    "ptq-entropy": ("entropy", False, True),
    "ptq-percentile": ("percentile", False, True),
    "qat": ("max", True, True),
    "qat-float-adds": ("max", True, False),
}
ORT_RECIPES = {"ort-ptq": (False, False), "ort-qat": (True, False), "ort-qat-lsq": (True, True)}


def trained(name: str, num_classes: int, state: dict) -> torch.nn.Module:
    m = create_timm(name, num_classes)
    m.load_state_dict(state)
    return m.eval()


def onnx_top1(model, path: Path, data, labels) -> tuple[float, float, float]:
    """(top-1 of the exported ONNX in ORT, its agreement with the torch model, torch top-1)."""
    export_onnx(model, path, data.input_shape)
    ort_pred = torch.from_numpy(ortb.predict(path, data.report_set)).argmax(1)
    torch_acc, torch_logits = evaluate_torch(model, data.report_set)
    acc = (ort_pred == labels).float().mean().item() * 100
    agree = (ort_pred == torch_logits.argmax(1)).float().mean().item() * 100
    return acc, agree, torch_acc


def ort_row(name, recipe, fp32_state, data, labels, calib, teacher, args, tmp: Path) -> dict:
    """ONNX Runtime's Q/DQ graph trained in torch and written as trained (ORT_RECIPES)."""
    qat, learn = ORT_RECIPES[recipe]
    t0 = time.perf_counter()
    model = ort_qdq_of(trained(name, data.num_classes, fp32_state), data.input_shape, calib,
                       64, learn_ranges=learn)  # fmt: skip
    if qat:
        qcfg = TrainConfig(epochs=args.qat_epochs, lr=args.qat_lr, seed=1, schedule="cosine")
        qres = distill(model, teacher, data, qcfg, tmp / f"{name}-{recipe}")
        model.load_state_dict(torch.load(qres.best_path, weights_only=True)["model"])
    path = export_ort(model.eval(), tmp / f"{name}-{recipe}.onnx")
    pred = torch.from_numpy(ortb.predict(path, data.report_set)).argmax(1)
    torch_acc, torch_logits = evaluate_torch(model, data.report_set)
    acc = (pred == labels).float().mean().item() * 100
    agree = (pred == torch_logits.argmax(1)).float().mean().item() * 100
    print(f"{name:22s} {recipe:18s} ORT INT8 (as trained) top-1 {acc:6.2f}%  torch "
          f"{torch_acc:6.2f}%  agreement {agree:6.2f}%", flush=True)
    return {"student": name, "recipe": recipe, "onnx_top1": acc, "residual_adds_quantized": None,
            "torch_top1": torch_acc, "onnx_torch_agreement": agree,
            "seconds": time.perf_counter() - t0}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", nargs="+",
                    default=["mobilenetv3_small_050", "lcnet_050", "resnet10t"])  # fmt: skip
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--teacher", type=Path, default=None, help="default: train a digits one")
    ap.add_argument("--data", default="digits", help="digits or fashion-mnist[:PATH], ...")
    ap.add_argument("--max-train", type=int, default=None, help="stratified training subset")
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES) + list(ORT_RECIPES),
                    choices=list(RECIPES) + list(ORT_RECIPES))  # fmt: skip
    ap.add_argument("--qat-lr", type=float, default=1e-4)
    ap.add_argument("--out", type=Path, default=None,
                    help="default benchmarks/results/quant_accuracy[-DATA].json")  # fmt: skip
    args = ap.parse_args()
    from kd_losses import bench_data, default_out, teacher_model  # benchmarks/ is on sys.path

    out = args.out or default_out("quant_accuracy", args.data)
    torch.set_num_threads(args.threads)

    teacher, teacher_desc = teacher_model(args.teacher)
    data = bench_data(args.data, args.max_train)
    _, labels = stack_inputs(data.report_set)
    calib = data.calibration_subset(256, 0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.students:
            torch.manual_seed(0)
            student = create_timm(name, data.num_classes)
            cfg = TrainConfig(epochs=args.epochs, lr=1e-2, seed=0)
            res = distill(student, teacher, data, cfg, tmp / name)
            fp32_state = torch.load(res.best_path, weights_only=True)["model"]

            for recipe in args.recipes:
                if recipe in ORT_RECIPES:
                    rows.append(ort_row(name, recipe, fp32_state, data, labels, calib, teacher,
                                        args, tmp))  # fmt: skip
                    continue
                method, qat, residual = RECIPES[recipe]
                t0 = time.perf_counter()
                model = trained(name, data.num_classes, fp32_state)
                if method is not None:
                    model = quantize_int8(model, calib, 64, method=method, percentile=99.99,
                                          residual=residual)  # fmt: skip
                if qat:
                    qcfg = TrainConfig(epochs=args.qat_epochs, lr=args.qat_lr, seed=1,
                                       schedule="cosine")  # fmt: skip
                    qres = distill(model, teacher, data, qcfg, tmp / f"{name}-qat")
                    model.load_state_dict(torch.load(qres.best_path, weights_only=True)["model"])
                acc, agree, torch_acc = onnx_top1(model, tmp / f"{name}-{recipe}.onnx", data,
                                                  labels)  # fmt: skip
                plan = getattr(model, "residual_plan", None)
                rows.append({"student": name, "recipe": recipe, "onnx_top1": acc,
                             "residual_adds_quantized": plan.to_record()["quantized"] if plan
                             else 0,
                             "torch_top1": torch_acc, "onnx_torch_agreement": agree,
                             "seconds": time.perf_counter() - t0})  # fmt: skip
                print(f"{name:22s} {recipe:18s} Q/DQ ONNX top-1 {acc:6.2f}%  torch "
                      f"{torch_acc:6.2f}%  agreement {agree:6.2f}%", flush=True)  # fmt: skip
    write_json(
        out,
        {
            "command": "python benchmarks/quant_accuracy.py --epochs "
            f"{args.epochs} --qat-epochs {args.qat_epochs} --qat-lr {args.qat_lr} --students "
            f"{' '.join(args.students)} --recipes {' '.join(args.recipes)}"
            f" --data {args.data}"
            + (f" --max-train {args.max_train}" if args.max_train else "")
            + (f" --teacher {args.teacher}" if args.teacher else ""),
            "data": args.data,
            "train_images": len(data.train),
            "accuracy_split": data.report_split,
            "machine": {
                "platform": platform.platform(),
                "torch": torch.__version__,
                "threads": args.threads,
            },  # fmt: skip
            "teacher": teacher_desc,
            "accuracy_images": int(len(labels)),
            "calibration_images": len(calib),
            "rows": rows,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
