"""TensorRT compatibility lint for ONNX models: what the device's TensorRT will refuse or run badly.

Rules (from TensorRT's ONNX parser support and its explicit-quantization rules):
- `opset`: TensorRT 8.0-8.4 parse opsets up to 13, 8.5/8.6 up to 17, 10.x 9 to 20.
- `unsupported-op`: QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger,
  DynamicQuantizeLinear (never); LayerNormalization, GroupNormalization before 8.6.
- `qdq-zero-point`: zero points must be 0 (symmetric quantization).
- `qdq-scale`: scales must be strictly positive, a scalar or 1-D (per channel).
- `qdq-type`: INT8 only before TensorRT 10 (no UINT8).
- `qdq-weight-axis`: per-channel weight quantization must be on axis 0 (output channels).
- `residual-add-float` (warning): an Add of two activations with no Q/DQ on its inputs in a
  quantized graph keeps the residual in float and blocks INT8 fusion.
- `float-island` (warning): a Conv/Gemm/MatMul in a quantized graph whose input is not
  dequantized runs in float between quantized layers.
Each finding names the node and says how to fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekd.errors import InputError
from edgekd.latency.graph import load_onnx

NEVER = {
    "QLinearConv": "export Q/DQ (QuantizeLinear/DequantizeLinear) pairs around a float Conv",
    "QLinearMatMul": "export Q/DQ pairs around a float MatMul",
    "ConvInteger": "export Q/DQ pairs around a float Conv",
    "MatMulInteger": "export Q/DQ pairs around a float MatMul",
    "DynamicQuantizeLinear": "use static Q/DQ with calibrated scales",
}
SINCE_86 = {"LayerNormalization", "GroupNormalization"}
COMPUTE = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning
    rule: str
    node: str
    message: str
    fix: str


def parse_trt_version(v: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in str(v).split(".")[:2]]
        return (parts[0], parts[1] if len(parts) > 1 else 0)
    except ValueError:
        raise InputError(
            "bad TensorRT version", value=repr(v), fix="use e.g. 8.5 or 10.3"
        ) from None


def opset_range(trt: tuple[int, int]) -> tuple[int, int]:
    if trt >= (10, 0):
        return (9, 20)
    if trt >= (8, 5):
        return (7, 17)
    return (7, 13)


def _const_arrays(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t)
    return out


def lint_model(model, trt_version: str) -> list[Finding]:
    """All findings for an onnx.ModelProto against TensorRT `trt_version`."""
    trt = parse_trt_version(trt_version)
    found: list[Finding] = []
    lo, hi = opset_range(trt)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if not lo <= opset <= hi:
        found.append(
            Finding(
                "error",
                "opset",
                "(model)",
                f"opset {opset} is outside TensorRT {trt[0]}.{trt[1]}'s {lo}-{hi}",
                f"export with opset {min(max(opset, lo), hi)}",
            )
        )
    consts = _const_arrays(model)
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    quantized = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in nodes)
    for n in nodes:
        name = n.name or n.op_type
        if n.op_type in NEVER:
            found.append(
                Finding(
                    "error",
                    "unsupported-op",
                    name,
                    f"{n.op_type} is not supported by TensorRT",
                    NEVER[n.op_type],
                )
            )
        if n.op_type in SINCE_86 and trt < (8, 6):
            found.append(
                Finding(
                    "error",
                    "unsupported-op",
                    name,
                    f"{n.op_type} needs TensorRT 8.6+",
                    "export with opset < 17 so it decomposes, or target TensorRT 8.6+",
                )
            )
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            found += _lint_qdq(n, name, consts, producer, trt)
        if quantized and n.op_type == "Add" and len(n.input) == 2:
            acts = [
                i
                for i in n.input
                if i not in consts
                and producer.get(i) is not None
                and producer[i].op_type != "Constant"
            ]
            if len(acts) == 2 and not any(producer[i].op_type == "DequantizeLinear" for i in acts):
                found.append(
                    Finding(
                        "warning",
                        "residual-add-float",
                        name,
                        "residual Add of two unquantized activations stays in float",
                        "quantize the Add's inputs (e.g. a Q/DQ on the skip branch) so TensorRT "
                        "fuses the residual in INT8",
                    )
                )
        if quantized and n.op_type in COMPUTE:
            src = producer.get(n.input[0])
            if src is None or src.op_type != "DequantizeLinear":
                found.append(
                    Finding(
                        "warning",
                        "float-island",
                        name,
                        f"{n.op_type} input is not dequantized: it runs in float in a "
                        "quantized graph",
                        "quantize this layer's input, or keep it in higher precision on purpose "
                        "(sensitive layer)",
                    )
                )
    return found


def _lint_qdq(n, name, consts, producer, trt) -> list[Finding]:
    out = []
    scale = consts.get(n.input[1]) if len(n.input) > 1 else None
    zp = consts.get(n.input[2]) if len(n.input) > 2 else None
    if scale is not None:
        if scale.ndim > 1:
            out.append(
                Finding(
                    "error",
                    "qdq-scale",
                    name,
                    f"scale has {scale.ndim} dimensions",
                    "use a scalar or 1-D scale",
                )
            )
        if not np.all(np.asarray(scale) > 0):
            out.append(
                Finding(
                    "error",
                    "qdq-scale",
                    name,
                    "scale is not strictly positive",
                    "recalibrate: every scale must be > 0 (a zero range means a "
                    "dead channel or unexcited layer)",
                )
            )
    if zp is not None:
        if np.any(np.asarray(zp) != 0):
            out.append(
                Finding(
                    "error",
                    "qdq-zero-point",
                    name,
                    "zero point is not 0",
                    "use symmetric quantization (zero point 0)",
                )
            )
        if zp.dtype == np.uint8 and trt < (10, 0):
            out.append(
                Finding(
                    "error",
                    "qdq-type",
                    name,
                    "UINT8 quantization; TensorRT before 10 supports INT8 only",
                    "quantize to signed INT8",
                )
            )
    if n.op_type == "DequantizeLinear" and scale is not None and scale.ndim == 1 and scale.size > 1:
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        src = producer.get(n.input[0])
        is_weight = n.input[0] in consts or (
            src is not None and src.op_type == "QuantizeLinear" and src.input[0] in consts
        )
        if is_weight and axis != 0:
            out.append(
                Finding(
                    "error",
                    "qdq-weight-axis",
                    name,
                    f"per-channel weight quantization on axis {axis}",
                    "quantize weights per output channel (axis 0)",
                )
            )
    return out


def lint_file(path: str | Path, trt_version: str) -> list[Finding]:
    return lint_model(load_onnx(path), trt_version)


def summarize(findings: list[Finding]) -> dict:
    return {
        "errors": sum(f.severity == "error" for f in findings),
        "warnings": sum(f.severity == "warning" for f in findings),
        "findings": [asdict(f) for f in findings],
    }
