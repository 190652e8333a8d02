"""Precision per block for the Q/DQ graph TensorRT builds (Model Optimizer's fake-quant model,
`edgekd.quant.modelopt_int8`): INT8 against the float precision TensorRT gives a layer left
without Q/DQ (FP16 where the device's TensorRT builds INT8 with --fp16, the ONNX's own float
type under strong typing: `latency.graph.resolve_precision`).

The device is not this machine, so nothing here is timed. Each candidate of
`precision.choose_cut` (all INT8, a float tail, a float head) is the exported Q/DQ graph with
the Q/DQ pairs of its float layers taken out, costed by `latency.cost.predict_latency` as
TensorRT would build it at int8. That cost uses the target's measured layer table
(`latency.layer_table`: per-layer times from trtexec profiles of earlier engines on the
device) where it knows a layer's signature, and the roofline elsewhere. The roofline alone
never prices an INT8 layer above the same layer in FP16 (INT8's peak is the higher and its
bytes the fewer) and TensorRT fuses the Q/DQ, so without a layer table every layer stays INT8;
a table measured on the device, where INT8 kernels lose (depthwise convolutions at small
sizes are the known case), moves the choice. A reformat layer at an INT8/float boundary is
not costed.

A residual tap (`edgekd.quant.residual`) quantizes the next block's input (its readers' own
input quantizers are off), so it belongs to the block that reads it: the block after it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgekd.quant.ort_qat import torch_name
from edgekd.quant.precision import PrecisionChoice, block_of, choose_cut, predicted_timer

QUANTIZERS = ("input_quantizer", "weight_quantizer")


def quantizer_owner(node_name: str) -> str | None:
    """The module whose quantizer a Q/DQ node is: `/layer1/layer1.0/conv1/input_quantizer/
    QuantizeLinear` -> `layer1.0.conv1`; None for any other node."""
    head, _, last = torch_name(node_name).rpartition(".")
    return head if last in QUANTIZERS else None


def drop_qdq(model, layers: set[str]):
    """A copy of ONNX `model` without the Q -> DQ pairs of the quantizers of `layers` (module
    names): their readers take the float tensor, as Model Optimizer exports a module whose
    quantizers are off."""
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = list(out.graph.node)
    made = {o: n for n in nodes for o in n.output}
    rename: dict[str, str] = {}
    gone: set[str] = set()
    for n in nodes:
        q = made.get(n.input[0]) if n.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear" and quantizer_owner(q.name) in layers:
            rename[n.output[0]] = q.input[0]
            gone |= {n.name, q.name}
    keep = [n for n in nodes if n.name not in gone]
    for n in keep:
        for i, x in enumerate(n.input):
            if x in rename:
                n.input[i] = rename[x]
    for o in out.graph.output:
        if o.name in rename:  # a graph output read straight off a dropped DQ keeps its name
            keep.append(onnx.helper.make_node("Identity", [rename[o.name]], [o.name]))
    del out.graph.node[:]
    out.graph.node.extend(keep)
    return out


def trt_blocks(names: list[str]) -> dict[str, list[str]]:
    """Block -> quantized module names, in order; a residual tap joins the block after it."""
    out: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        reader = name
        if name.endswith("edgekd_residual") and i + 1 < len(names):
            reader = names[i + 1]
        out.setdefault(block_of(reader), []).append(name)
    return out


def costed_trt_precision(
    qmodel,
    onnx_path: str | Path,
    target,
    min_saving: float = 0.03,
    say: Callable[[str], None] | None = None,
    float_layers: list[str] | None = None,
) -> PrecisionChoice:
    """Choose the float blocks of Model Optimizer model `qmodel`, whose all-INT8 Q/DQ export
    is `onnx_path`, by `target`'s cost model (see the module docstring); leaves `qmodel` with
    the chosen blocks' quantizers off. `float_layers`: the modules the quantize stage's
    accuracy budget put in float (their quantizers are off): they stay float in every cut,
    and the record names them."""
    import onnx

    from edgekd.latency.graph import resolve_precision
    from edgekd.quant.sensitivity import quantized_layers

    layers = quantized_layers(qmodel)  # module -> its enabled quantizers
    fixed = [n for n in float_layers or [] if n not in layers]
    order = [n for n, m in qmodel.named_modules() if n in layers or n in fixed]
    base = onnx.load(str(onnx_path))

    def write(config: list[str], path: Path) -> Path:
        onnx.save(drop_qdq(base, set(config)), str(path))
        return path

    def apply(config: list[str]) -> None:
        for name, qs in layers.items():
            for q in qs:
                if name in config:
                    q.disable()
                else:
                    q.enable()

    float_prec = resolve_precision(target, "int8", True, "fp32")[0]
    return choose_cut(
        trt_blocks(order), lambda k: k, fixed, write,
        lambda paths: predicted_timer(paths, target, "int8"), apply, 1, min_saving,
        target.name, 1, float_prec, say,
    )  # fmt: skip


__all__ = ["costed_trt_precision", "drop_qdq", "quantizer_owner", "trt_blocks"]
