"""INT8 on ONNX Runtime, measured: FP32 vs Model Optimizer's Q/DQ graph vs edgekd's ORT layout.

    python benchmarks/quant.py [--threads 1] [--out benchmarks/results/quant.json]

For each model (random init: latency does not depend on the weights) at 3x224x224, batch 1:
- fp32: the float ONNX;
- int8-modelopt: Model Optimizer INT8 fake-quant (max calibration) exported as Q/DQ, the
  graph TensorRT wants (BatchNorm unfolded);
- int8-ort: the same float weights exported, BatchNorm folded, Q/DQ placed by ONNX Runtime's
  quantizer (what edgekd ships for ONNX Runtime targets);
- int8-ort-own: ONNX Runtime's quantize_static after quant_pre_process with its defaults
  (S8 activations), for reference.
Each with the float Conv/Gemm count left in ORT's optimized graph (0 = fully integer) and p50
latency; all rows measured in one process, one after another.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

from edgekd._io import write_json
from edgekd.backends import onnxruntime as ortb
from edgekd.export import export_onnx
from edgekd.quant import quantize_int8
from edgekd.quant.ort_layout import fusion_report, quantize_for_ort

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("resnet18", "mobilenetv3_large_100")
SHAPE = (3, 224, 224)


def ort_own(float_onnx: Path, out: Path, calib) -> Path:
    from onnxruntime.quantization import QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgekd.quant.ort_layout import _Reader

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(float_onnx), str(pre), skip_symbolic_shape=True)
    quantize_static(
        str(pre),
        str(out),
        _Reader(calib, "input", 8),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
    )
    return out


def main() -> None:
    import timm

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/quant.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    calib = TensorDataset(torch.randn(32, *SHAPE), torch.zeros(32, dtype=torch.long))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for name in MODELS:
            model = timm.create_model(name, pretrained=False).eval()
            files = {"fp32": export_onnx(model, d / f"{name}.onnx", SHAPE).path}
            q = quantize_int8(timm.create_model(name, pretrained=False).eval(), calib, 8)
            q.load_state_dict(model.state_dict(), strict=False)
            files["int8-modelopt"] = export_onnx(q, d / f"{name}-mo.onnx", SHAPE).path
            ort = quantize_for_ort(files["fp32"], d / f"{name}-ort.onnx", calib, 8)
            files["int8-ort"] = ort.path
            files["int8-ort-own"] = ort_own(files["fp32"], d / f"{name}-own.onnx", calib)
            base = None
            for kind, path in files.items():
                lat = ortb.profile(path, SHAPE, threads=args.threads, warmup=5, iters=args.iters)
                left = fusion_report(path)["float_conv_gemm"]
                base = base or lat.p50_ms
                rows.append(
                    {
                        "model": name,
                        "artifact": kind,
                        "p50_ms": lat.p50_ms,
                        "p90_ms": lat.p90_ms,
                        "speedup_vs_fp32": base / lat.p50_ms,
                        "float_conv_gemm_left": left,
                    }
                )
                print(
                    f"{name:24s} {kind:14s} p50 {lat.p50_ms:8.2f} ms  x{base / lat.p50_ms:5.2f} "
                    f"vs fp32  float Conv/Gemm left: {left}",
                    flush=True,
                )
    write_json(
        args.out,
        {
            "command": f"python benchmarks/quant.py --threads {args.threads}",
            "machine": {"platform": platform.platform(), "date": time.strftime("%Y-%m-%d")},
            "shape": SHAPE,
            "batch": 1,
            "threads": args.threads,
            "iters": args.iters,
            "statistic": "p50 after 5 warm-up",
            "rows": rows,
        },
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
