"""Read an ONNX graph into costed layers: FLOPs and bytes per layer, at its precision.

A *layer* is what a runtime executes as one kernel: a Conv/Gemm/MatMul with the pointwise ops
it fuses (BatchNorm, activations, a residual Add), or a standalone elementwise/pooling op.
Shape-only ops (Reshape, Flatten, Constant, ...) cost nothing.

Precision is read from the graph (Q/DQ-aware) and the runtime's fusion rules:
- TensorRT fuses every Q/DQ pair: a Conv whose data input comes from DequantizeLinear runs in
  INT8, and Q/DQ nodes vanish.
- ONNX Runtime (CPU) fuses only `DQ -> Conv/Gemm -> Q` where the weight is an INT8 constant
  behind a DQ and the Conv's output feeds a QuantizeLinear directly, or through a Relu that
  ORT folds into that Q (its zero point the type's minimum); everything else runs in float,
  and its Q/DQ nodes execute as separate elementwise kernels.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.errors import InputError

COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
SHAPE_OPS = {
    "Reshape",
    "Flatten",
    "Shape",
    "Constant",
    "Identity",
    "Unsqueeze",
    "Squeeze",
    "Gather",
    "Cast",
    "ConstantOfShape",
    "Range",
    "Slice",
    "Dropout",
    "Size",
}
POINTWISE_FUSABLE = {
    "BatchNormalization",
    "Relu",
    "Clip",
    "HardSwish",
    "HardSigmoid",
    "Sigmoid",
    "LeakyRelu",
    "Mul",
    "Add",
    "Tanh",
    "Gelu",
    "Silu",
    "Swish",
    "Div",
    "Sub",
    "Erf",
    "PRelu",
}
QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass
class Layer:
    name: str
    op: str
    op_class: str  # dense_conv | depthwise_conv | gemm | elementwise
    precision: str
    flops: float
    bytes: float
    fused: list[str] = field(default_factory=list)


def _without_weights(model):
    """A copy whose initializers are graph inputs of the same type and shape, without data:
    shape inference then does not serialize megabytes of weights (10x faster on resnet101)."""
    import onnx

    light = onnx.ModelProto()
    light.CopyFrom(model)
    del light.graph.initializer[:]
    names = {i.name for i in light.graph.input}
    for init in model.graph.initializer:
        if init.name not in names:
            light.graph.input.append(
                onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims))
            )
    return light


def _shape_map(model) -> dict[str, tuple[int, ...]]:
    import onnx

    initializers = {i.name: tuple(i.dims) for i in model.graph.initializer}
    model = _without_weights(model)
    for inp in model.graph.input:  # batch 1: cost what a single-image latency measures
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].dim_value and inp.name not in initializers:
            dims[0].dim_value = 1
    try:
        model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as e:
        raise InputError(
            "ONNX shape inference failed", value=str(e).splitlines()[0][:160]
        ) from None
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = tuple(max(int(d.dim_value), 1) for d in dims)
    shapes.update(initializers)
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = tuple(a.t.dims)
    return shapes


def _numel(shape) -> int:
    return int(np.prod(shape)) if shape else 1


def load_onnx(path: str | Path):
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InputError("ONNX file not found", value=str(path), fix="check the path")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(_without_weights(model))
    except Exception as e:
        raise InputError(
            "not a valid ONNX model", value=str(path), fix=str(e).splitlines()[0][:160]
        ) from None
    return model


def graph_layers(
    model, runtime: str, float_precision: str = "fp32", implicit_int8: bool = False
) -> list[Layer]:
    """Costed layers of an ONNX model as `runtime` would execute it.

    Args:
        model: an onnx.ModelProto.
        runtime: "tensorrt" or "onnxruntime" (decides which Q/DQ patterns run in INT8).
        float_precision: precision of float layers: fp32, or fp16 (TensorRT --fp16).
        implicit_int8: cost every Conv/Gemm in INT8 (TensorRT --int8 on a float ONNX).
    """
    from onnx import numpy_helper

    shapes = _shape_map(model)
    nodes = list(model.graph.node)
    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list] = defaultdict(list)
    for n in nodes:
        for i in n.input:
            consumers[i].append(n)
    constants = {i.name for i in model.graph.initializer} | {
        n.output[0] for n in nodes if n.op_type == "Constant"
    }
    int8_consts = {i.name for i in model.graph.initializer if i.data_type == 3}  # INT8
    small_inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer
                   if _numel(i.dims) == 1 and i.data_type in (2, 3)}  # UINT8/INT8 zero points
    # static tensors: computed from constants and shapes only (folded before inference)
    static = set(constants)
    for n in nodes:
        if n.op_type in ("Shape", "Size") or (
            n.input and all(not i or i in static for i in n.input)
        ):
            static.update(n.output)

    def is_constant(name: str) -> bool:
        return name in static

    def through_layout(name: str):
        """The producer of `name`, looking through layout-only ops on the way."""
        p = producer.get(name)
        while p is not None and p.op_type in ("Transpose", "Identity", "Cast", "Reshape"):
            p = producer.get(p.input[0])
        return p

    def from_dq(name: str) -> bool:
        p = through_layout(name)
        return p is not None and p.op_type == "DequantizeLinear"

    def weight_is_int8(name: str) -> bool:
        p = through_layout(name)
        if p is None or p.op_type != "DequantizeLinear":
            return False
        src = p.input[0]
        if src in int8_consts:
            return True
        q = producer.get(src)  # Q(float constant) is folded to an INT8 constant by ORT
        return q is not None and q.op_type == "QuantizeLinear" and is_constant(q.input[0])

    def int8_compute(n) -> bool:
        if implicit_int8:
            return True
        if n.op_type == "MatMul":
            data = [i for i in n.input if not is_constant(i)]
            weights = [i for i in n.input if is_constant(i)]
        else:
            data, weights = [n.input[0]], n.input[1:2]
        if not data or not all(from_dq(i) for i in data):
            return False
        if runtime == "tensorrt":
            return True
        if not all(weight_is_int8(w) for w in weights):
            return False
        if n.op_type in ("MatMul", "Gemm"):
            return True  # ORT: DQ -> MatMul becomes MatMulIntegerToFloat, no output Q needed
        outs = consumers.get(n.output[0], [])
        if len(outs) == 1 and outs[0].op_type == "Relu" and folds_relu(outs[0]):
            return True  # DQ -> Conv -> Relu -> Q: ORT drops the Relu into Q, then fuses
        return bool(outs) and all(c.op_type == "QuantizeLinear" for c in outs)

    def folds_relu(relu) -> bool:
        """ORT removes `Relu -> Q` when every reader of the Relu is a QuantizeLinear whose
        zero point is its type's minimum (UINT8 0, INT8 -128): the clip does the ReLU."""
        outs = consumers.get(relu.output[0], [])
        return bool(outs) and all(
            c.op_type == "QuantizeLinear" and zero_point_is_min(c) for c in outs)

    def zero_point_is_min(q) -> bool:
        if len(q.input) < 3 or not q.input[2]:
            return True  # no zero point: UINT8 0
        zp = small_inits.get(q.input[2])
        if zp is None:
            return False
        return int(zp.reshape(-1)[0]) == np.iinfo(zp.dtype).min  # UINT8 0, INT8 -128

    def act_bytes(names, prec) -> float:
        return (
            sum(_numel(shapes.get(x, ())) for x in names if x and not is_constant(x)) * BYTES[prec]
        )

    def weight_bytes(names, prec) -> float:
        return sum(_numel(shapes.get(x, ())) for x in names if x and is_constant(x)) * BYTES[prec]

    layers: list[Layer] = []
    owner: dict[str, Layer] = {}  # tensor -> compute layer it fused into
    for n in nodes:
        op = n.op_type
        if op in SHAPE_OPS or (op not in QDQ_OPS and all(o in static for o in n.output)):
            continue
        if op in QDQ_OPS:
            if runtime == "tensorrt":
                continue
            # ONNX Runtime: Q/DQ around fused integer kernels disappear into QLinear ops;
            # otherwise they run as elementwise kernels (weights' DQ included, every call)
            if op == "QuantizeLinear" and is_constant(n.input[0]):
                continue  # folded into an INT8 initializer at session creation
            if (
                op == "DequantizeLinear"
                and consumers[n.output[0]]
                and all(
                    c.op_type in ("Transpose", "Reshape")
                    and all(
                        cc.op_type in COMPUTE_OPS and int8_compute(cc)
                        for cc in consumers[c.output[0]]
                    )
                    for c in consumers[n.output[0]]
                )
            ):
                continue  # weight DQ -> Transpose -> int8 MatMul: folded into the kernel
            src = producer.get(n.input[0])
            if (
                op == "DequantizeLinear"
                and consumers[n.output[0]]
                and all(
                    c.op_type in COMPUTE_OPS and int8_compute(c) for c in consumers[n.output[0]]
                )
            ):
                continue
            if (
                op == "QuantizeLinear"
                and src is not None
                and src.op_type == "Relu"
                and folds_relu(src)
            ):
                src = producer.get(src.input[0])  # the Relu went into this Q: look behind it
            if (
                op == "QuantizeLinear"
                and src is not None
                and src.op_type in COMPUTE_OPS
                and int8_compute(src)
            ):
                continue
            numel = _numel(shapes.get(n.output[0], ()))
            layers.append(
                Layer(n.name or op, op, "elementwise", "fp32", float(numel), numel * (4 + 1))
            )
            continue
        if op in COMPUTE_OPS:
            prec = "int8" if int8_compute(n) else float_precision
            out = shapes.get(n.output[0], ())
            if op in ("Conv", "ConvTranspose"):
                w = shapes.get(n.input[1], ())
                group = next((a.i for a in n.attribute if a.name == "group"), 1)
                kernel = _numel(w[1:]) if len(w) > 1 else 1  # Cin/group * kh * kw
                flops = 2.0 * _numel(out) * kernel
                cin = w[1] * group if len(w) > 1 else 1
                klass = "depthwise_conv" if group > 1 and group == cin else "dense_conv"
            else:
                a = shapes.get(n.input[0], ())
                k = a[-1] if a else 1
                flops = 2.0 * _numel(out) * k
                klass = "gemm"
            data_in = [n.input[0]] if op != "MatMul" else [x for x in n.input if not is_constant(x)]
            layer = Layer(
                n.name or op,
                op,
                klass,
                prec,
                flops,
                act_bytes(data_in, prec)
                + weight_bytes(n.input[1:], prec)
                + _numel(out) * BYTES[prec],
            )
            layers.append(layer)
            owner[n.output[0]] = layer
            continue
        # a pointwise op behind a compute layer whose output only pointwise ops read: fused
        # (Conv+BN+ReLU, a residual Add, x * sigmoid(x))
        fusable = [
            i
            for i in n.input
            if i in owner and all(c.op_type in POINTWISE_FUSABLE for c in consumers[i])
        ]
        src = owner[fusable[-1]] if fusable else None
        if op in POINTWISE_FUSABLE and src is not None:
            extra = [i for i in n.input if i not in fusable and not is_constant(i)]
            src.bytes += act_bytes(extra, src.precision)
            src.fused.append(op)
            owner[n.output[0]] = src
            continue
        numel_out = _numel(shapes.get(n.output[0], ()))
        numel_in = sum(_numel(shapes.get(i, ())) for i in n.input if i and not is_constant(i))
        layers.append(
            Layer(
                n.name or op,
                op,
                "elementwise",
                float_precision,
                float(max(numel_in, numel_out)),
                (numel_in + numel_out) * BYTES[float_precision],
            )
        )
    return layers


def resolve_precision(
    target, precision: str | None, quantized: bool, float_type: str = "fp32"
) -> tuple:
    """(float precision, implicit int8) for a build at `precision` of a (Q/DQ or float) ONNX
    whose float tensors are `float_type`.

    TensorRT: the float layers of an INT8 engine are what `trt_versions.int8_float_precision`
    says (the rule `trt_build.build_mode` builds with): FP16 on 8.x (`--int8 --fp16`), the
    ONNX's own float type under strong typing (10.x GPU, 11.x). A float graph asked for INT8
    gets TensorRT's implicit INT8."""
    if precision is None:
        return ("fp32", False)
    if precision not in target.precisions:
        raise InputError(
            f"target {target.name!r} has no {precision} path",
            value=precision,
            valid=target.precisions,
        )
    if precision == "int8":
        fallback = "fp16" if "fp16" in target.precisions else "fp32"
        if target.runtime == "tensorrt" and quantized:
            from edgekd.trt_versions import int8_float_precision, parse_version

            fallback = int8_float_precision(parse_version(target.runtime_version), float_type)
        return (fallback, not quantized)
    return (precision, False)


def float_type(model) -> str:
    """fp16 when the graph's weights are FP16, else fp32."""
    import onnx

    fp16 = onnx.TensorProto.FLOAT16
    return "fp16" if any(i.data_type == fp16 for i in model.graph.initializer) else "fp32"


def is_quantized(model) -> bool:
    """A Q/DQ graph (explicitly quantized): it holds a QuantizeLinear."""
    return any(n.op_type == "QuantizeLinear" for n in model.graph.node)


def costed_layers(model, target, precision: str | None) -> list[Layer]:
    """The layers of ONNX `model` as `target`'s runtime would build it at `precision`
    (see `resolve_precision`): what the cost model and the layer table both cost."""
    float_prec, implicit = resolve_precision(
        target, precision, is_quantized(model), float_type(model)
    )
    return graph_layers(model, target.runtime, float_prec, implicit)
