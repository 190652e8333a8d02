"""TensorRT compatibility lint for ONNX models: what the device's TensorRT will refuse or run badly.

Rules (onnx-tensorrt docs/operators.md per release, TensorRT's explicit-quantization rules in
NvInfer.h, as audited in shared/reference/tensorrt/audit-2026-12.md section 3):
- `opset`: the parser's opset range per TensorRT minor version (`trt_versions.facts`: 8.2 up
  to 13, 8.4-8.6 up to 17, 10.0-10.8 9 to 20, 10.9+ up to 22, 10.15+ up to 24, 11.x up to 25).
- `unsupported-op`: QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger,
  DynamicQuantizeLinear (never); LayerNormalization, GroupNormalization before 8.6.
- `qdq-opset`: QuantizeLinear/DequantizeLinear need opset 10, per-axis quantization opset 13.
- `qdq-zero-point`: zero points must be 0 (symmetric quantization).
- `qdq-scale`: scales must be strictly positive, a scalar or 1-D (per channel).
- `qdq-type`: INT8 only, on every version: the importer refuses UINT8 Q/DQ ("Found unsupported
  input type of UINT8", onnx-tensorrt 10.1-GA onnxOpImporters.cpp:1349); a QuantizeLinear
  without a zero point is UINT8 by ONNX's definition.
- `qdq-activation-per-channel`: per-channel scales on activations ("Activations cannot be
  quantized per-channel", NvInfer.h@v10.3.0:5486-5489).
- `qdq-weight-axis`: per-channel weight quantization must be on axis 0 (output channels of a
  Conv; for ConvTranspose axis 0 is its input channels, the only axis TensorRT takes there).
- `qdq-scale-type` (strongly typed builds, TensorRT 10+): a QuantizeLinear's scale has the type
  of its input (NvInfer.h@v10.3.0:7416-7419).
- `dla-shape` (with `dla=True`): DLA needs static shapes (min = opt = max), and TensorRT
  11.0-11.3 has no DLA.
- `residual-add-float` (warning): an Add of two activations with no Q/DQ on its inputs in a
  quantized graph keeps the residual in float and blocks INT8 fusion.
- `float-island` (warning): a Conv/Gemm/MatMul in a quantized graph whose input is not
  dequantized runs in float between quantized layers. TensorRT moves a DQ forward through
  commuting layers (MaxPool, Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Identity), so the
  rule looks back through them; both inputs of a MatMul count.
Each finding names the node and says how to fix it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekd.errors import InputError
from edgekd.latency.graph import load_onnx
from edgekd.trt_versions import facts

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
    f = facts(trt)
    return (f.opset_min, f.opset_max)


# layers TensorRT propagates a DequantizeLinear forward through (explicit-quantization chapter
# of the developer guide: "DQ forward-propagation")
COMMUTING = {"MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"}


def _dequantized(name: str, producer: dict, consts: dict) -> bool:
    """Whether tensor `name` comes from a DequantizeLinear, through commuting layers."""
    seen = 0
    while seen < 64:
        src = producer.get(name)
        if src is None:
            return name in consts  # a weight: TensorRT quantizes it with its own Q/DQ
        if src.op_type == "DequantizeLinear":
            return True
        if src.op_type not in COMMUTING or not src.input:
            return False
        name, seen = src.input[0], seen + 1
    return False


def _elem_types(model) -> dict[str, int]:
    """ONNX element type of every tensor shape inference can type."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    g = inferred.graph
    out = {i.name: i.data_type for i in g.initializer}
    for v in (*g.input, *g.value_info, *g.output):
        if v.type.HasField("tensor_type"):
            out[v.name] = v.type.tensor_type.elem_type
    return out


def _const_arrays(model) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = numpy_helper.to_array(a.t)
    return out


def lint_model(model, trt_version: str, *, dla: bool = False) -> list[Finding]:
    """All findings for an onnx.ModelProto against TensorRT `trt_version` (and its DLA, with
    `dla=True`)."""
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
    types = _elem_types(model) if quantized and facts(trt).strongly_typed else {}
    if dla:
        found += _lint_dla(model, trt)
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
            found += _lint_qdq(n, name, consts, producer, trt, opset, types)
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
            ins = n.input[:2] if n.op_type == "MatMul" else n.input[:1]
            if not all(_dequantized(i, producer, consts) for i in ins):
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


def _lint_dla(model, trt) -> list[Finding]:
    out = []
    if not facts(trt).dla:
        out.append(Finding("error", "dla-shape", "(model)",
                           f"TensorRT {trt[0]}.{trt[1]} has no DLA (11.0-11.3)",
                           "build for the GPU, or use TensorRT 10.x (JetPack 6)"))  # fmt: skip
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if any(d.HasField("dim_param") or not d.HasField("dim_value") for d in dims):
            out.append(Finding("error", "dla-shape", inp.name,
                               "a dynamic input shape: DLA needs min = opt = max",
                               "export a static batch for DLA, or build for the GPU"))  # fmt: skip
    return out


def _lint_qdq(n, name, consts, producer, trt, opset: int, types: dict) -> list[Finding]:
    out = []
    scale = consts.get(n.input[1]) if len(n.input) > 1 else None
    zp = consts.get(n.input[2]) if len(n.input) > 2 and n.input[2] else None
    per_axis = scale is not None and scale.ndim == 1 and scale.size > 1
    if opset < 10 or (per_axis and opset < 13):
        need = 13 if opset >= 10 else 10
        what = f"{n.op_type}{' per axis' if per_axis else ''}"
        out.append(Finding("error", "qdq-opset", name,
                           f"{what} needs opset {need}, the model is opset {opset}",
                           f"export with opset >= {need}"))  # fmt: skip
    if n.op_type == "QuantizeLinear" and zp is None and not (len(n.input) > 2 and n.input[2]):
        out.append(Finding("error", "qdq-type", name,
                           "QuantizeLinear without a zero point quantizes to UINT8 (ONNX's "
                           "default), which TensorRT refuses",
                           "give it an INT8 zero point of 0"))  # fmt: skip
    if per_axis and not _is_weight(n, consts, producer):
        out.append(Finding("error", "qdq-activation-per-channel", name,
                           f"per-channel scale ({scale.size} values) on an activation; "
                           "TensorRT quantizes activations per tensor only",
                           "use one scale for the activation (per-tensor)"))  # fmt: skip
    if types and n.op_type == "QuantizeLinear" and scale is not None:
        x_type = types.get(n.input[0])
        s_type = types.get(n.input[1])
        if x_type and s_type and x_type != s_type:
            out.append(Finding("error", "qdq-scale-type", name,
                               "scale type differs from the input type; strongly typed "
                               f"TensorRT {trt[0]}.{trt[1]} builds need them equal",
                               "cast the scale to the input's float type"))  # fmt: skip
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
        if zp.dtype == np.uint8:
            out.append(
                Finding(
                    "error",
                    "qdq-type",
                    name,
                    f"UINT8 quantization; TensorRT {trt[0]}.{trt[1]} takes INT8 Q/DQ only",
                    "quantize to signed INT8",
                )
            )
    if n.op_type == "DequantizeLinear" and scale is not None and scale.ndim == 1 and scale.size > 1:
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        if _is_weight(n, consts, producer) and axis != 0:
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


def _is_weight(n, consts, producer) -> bool:
    """Whether a Q/DQ node quantizes a constant (a weight) rather than an activation."""
    src = producer.get(n.input[0])
    return n.input[0] in consts or (
        src is not None and src.op_type == "QuantizeLinear" and src.input[0] in consts
    )


def lint_file(path: str | Path, trt_version: str, *, dla: bool = False) -> list[Finding]:
    return lint_model(load_onnx(path), trt_version, dla=dla)


def summarize(findings: list[Finding]) -> dict:
    return {
        "errors": sum(f.severity == "error" for f in findings),
        "warnings": sum(f.severity == "warning" for f in findings),
        "findings": [asdict(f) for f in findings],
    }
