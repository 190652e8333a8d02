"""edgekd from Python: every stage is a function; `compress` chains them.

    python examples/python_api.py [--epochs 5] [--student auto] [--out runs/api]

Uses the built-in digits data and a fresh timm teacher (timm:resnet10t, random init) so it
runs anywhere in about a minute; pass --teacher examples/digits/teacher.pt for the trained one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgekd.config import Budgets, CompressConfig
from edgekd.latency.cost import predict_latency
from edgekd.pipeline.compress import compress
from edgekd.targets import get_target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="timm:resnet10t")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--student", default="auto", help="a timm name, or auto (the search)")
    ap.add_argument("--out", type=Path, default=Path("runs/api"))
    ap.add_argument("--max-train", type=int, default=None, help="a stratified training subset")
    args = ap.parse_args()

    cfg = CompressConfig(
        teacher=args.teacher,
        data="digits",
        target="host",
        out=args.out,
        student=args.student,
        epochs=args.epochs,
        qat_epochs=1,
        max_train=args.max_train,
        force=True,
    )
    result = compress(cfg, budgets=Budgets(max_accuracy_drop=None))
    art = result.report["artifact"]
    print(
        f"exit code {result.exit_code}; shipped {art['path']} ({art['precision']}), "
        f"top-1 {art['accuracy']:.2f}%, p90 {art['latency']['p90_ms']:.3f} ms on this machine"
    )

    # the same student, costed on a Jetson as TensorRT would build it in INT8 (the host run
    # exports ONNX Runtime's graph; a --target jetson run exports the Q/DQ graph TensorRT builds)
    jetson = get_target("jetson-orin-nano-8gb")
    pred = predict_latency(result.run_dir / "export/model-fp32.onnx", jetson, "int8")
    print(
        f"the student in INT8 predicted on {jetson.name}: {pred.total_ms:.3f} ms "
        f"({len(pred.layers)} layers, {pred.flops / 1e6:.1f} MFLOPs)"
    )


if __name__ == "__main__":
    main()
