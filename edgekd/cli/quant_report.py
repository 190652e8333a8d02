"""`edgekd quant-report RUN_DIR`: how a run's student was quantized and which layers hurt."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli._common import Debug, guarded


def quant_report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory of a compress run.")],
    top: Annotated[int, typer.Option(help="Show the N most sensitive layers.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Calibration, PTQ vs QAT, the per-layer sensitivity ranking (output KL when only that
    layer is INT8), layers kept in float, parity of each export and the TensorRT lint."""

    def body() -> None:
        from edgekd.report.writer import load_report, quant_summary

        s = quant_summary(load_report(run_dir), top=top)
        if as_json:
            sys.stdout.write(json.dumps(s, indent=2) + "\n")
            return
        out = [
            f"student {s['student']}: {s['graph']}, {s['method']} calibration"
            + (f" at {s['percentile']}%" if s["percentile"] else "")
            + f" on {s['calib_size']} images",
            f"PTQ val {s['ptq_val_acc']:.2f}%"
            + (f", QAT val {s['qat_val_acc']:.2f}%" if s["qat_val_acc"] is not None else "")
            + f"; kept {s['kept']}; shipped {s['shipped']}",
        ]
        if s["residual_line"]:
            out.append(s["residual_line"])
        if s["precision_line"]:
            out.append(s["precision_line"])
        if s["float_layers"]:
            out.append(
                f"kept in float to meet the accuracy budget: {', '.join(s['float_layers'])} "
                f"(val {s['mixed_val_acc']:.2f}%)"
            )
        out.append(
            f"sensitivity (top {len(s['sensitivity'])} of {s['sensitivity_layers']} layers; "
            "output KL vs FP32 with only that layer INT8):"
        )
        out += [
            f"  {i + 1:3d}. {row['layer']:50s} {row['kl']:.3e}"
            for i, row in enumerate(s["sensitivity"])
        ]
        for name, p in s["parity"].items():
            out.append(
                f"parity {name}: top-1 agreement {p['top1_agreement']:.2f}% with torch, "
                f"max |diff| {p['max_abs_diff']:.2e} ({p['samples']} images)"
            )
        gate = s["parity_gate"]
        if gate is not None:
            out.append(
                f"parity gate (--min-parity {gate['limit']:g}): the shipped {s['shipped']} "
                f"artifact agrees {gate['value']:.2f}% with its torch model: "
                + ("passed" if gate["passed"] else "FAILED")
            )
        if s["float_conv_gemm_left"]:
            left = ", ".join(f"{k}: {v}" for k, v in s["float_conv_gemm_left"].items())
            out.append(f"float Conv/Gemm left in ONNX Runtime's graph: {left}")
        for name, lint in (s["lint"] or {}).items():
            out.append(
                f"TensorRT lint {name}: {lint['errors']} error(s), {lint['warnings']} warning(s)"
            )
        sys.stdout.write("\n".join(out) + "\n")

    guarded(body, debug=debug)
