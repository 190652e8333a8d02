"""INT8 trained exactly as ONNX Runtime runs it.

For an ONNX Runtime target the graph that ships is ORT's own Q/DQ layout (`ort_layout`):
BatchNorm folded into the convolutions, weights symmetric INT8 per channel, activations
asymmetric UINT8 on every tensor ORT's quantizer chooses (convolution inputs, Add, Mul,
pooling, hard-swish, squeeze-excite...). Model Optimizer's fake-quant model trains a different
graph (BatchNorm unfolded, symmetric activations, only module inputs quantized), so the ORT file
used to be re-quantized after QAT and agreed with the trained model on as little as 91% of
images (MobileNetV3, LCNet).

`OrtQdq` is that Q/DQ graph as a torch module: each node of the ONNX graph run by its torch
equivalent, each QuantizeLinear/DequantizeLinear pair a fake-quant with the same scale, zero
point and integer range, weights and biases trainable floats that are fake-quantized the way
ORT stores them (weights per channel on the DQ's axis, scale max|w|/127; biases INT32 with scale
input-scale x weight-scale). QAT trains it; `export_ort` writes the trained integer weights,
scales and zero points back into the same graph. Nothing is calibrated after training, so the
file ONNX Runtime runs is the model that was trained.

Activation ranges are fixed after calibration (ORT's MinMax), or learned (`learn_ranges`:
LSQ, Esser et al. 2020, arXiv 1902.08153: the scale is a parameter with the gradient of the
rounding function taken as the straight-through estimator and scaled by 1/sqrt(numel * qmax);
the zero point stays where calibration put it, so a ReLU that ORT folded into a zero point of
0 stays folded).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.errors import StageError

FORMAT = "edgekd.ort_qdq/1"
WEIGHT_RANGE = (-127, 127)  # ORT's symmetric INT8 range (quant_utils ONNX_INT_TYPE_SYMMETRIC_RANGE)
_QRANGE = {2: (0, 255), 3: (-128, 127)}  # TensorProto.UINT8, INT8
LAYER_OPS = ("Conv", "Gemm", "MatMul")


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _module_name(node_name: str, used: set[str]) -> str:
    """`/layer1/layer1.0/conv1/Conv` -> `layer1_0_conv1` (a torch-legal, unique child name)."""
    name = re.sub(r"\W", "_", torch_name(node_name)).strip("_") or "node"
    base, i = name, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def torch_name(node_name: str) -> str:
    """The torch module a node came from: `/layer1/layer1.0/conv1/Conv` -> `layer1.0.conv1`."""
    parts = [p for p in node_name.split("/") if p][:-1]
    out: list[str] = []
    for p in parts:
        if out and p.startswith(out[-1] + "."):
            out[-1] = p
        else:
            out.append(p)
    return ".".join(out) or node_name


class ActQuant(nn.Module):
    """One QuantizeLinear -> DequantizeLinear pair on an activation: fake quant with ORT's
    per-tensor scale and zero point. With `learn` the scale is trained as LSQ does (gradient
    scaled by 1/sqrt(numel * qmax)), kept as log s so that an optimizer step moves it by a
    relative amount whatever its magnitude (scales span 1e-4..1 in one network)."""

    def __init__(self, scale: float, zero_point: int, qrange: tuple[int, int], learn: bool):
        super().__init__()
        s = torch.tensor([float(scale)])
        if learn:
            self.log_scale = nn.Parameter(s.log())
        else:
            self.register_buffer("fixed_scale", s)
        self.register_buffer("zero_point", torch.tensor([int(zero_point)], dtype=torch.int32))
        self.qmin, self.qmax = qrange
        self.register_buffer("on", torch.tensor(True))  # in the state dict: mixed precision

    @property
    def learned(self) -> bool:
        return hasattr(self, "log_scale")

    @property
    def scale(self) -> torch.Tensor:
        return self.log_scale.exp() if self.learned else self.fixed_scale

    @property
    def enabled(self) -> bool:
        return bool(self.on)

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self.on.fill_(bool(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        if self.learned and self.training:
            grad = 1.0 / math.sqrt(x[0].numel() * self.qmax)
            return torch._fake_quantize_learnable_per_tensor_affine(
                x, self.scale, self.zero_point.float(), self.qmin, self.qmax, grad
            )
        return torch.fake_quantize_per_tensor_affine(
            x, float(self.scale), int(self.zero_point), self.qmin, self.qmax
        )


class QLayer(nn.Module):
    """A Conv, Gemm or MatMul node with trainable float weight and bias, fake-quantized as ORT
    stores them. `quantized = False` runs it in float (mixed precision)."""

    def __init__(self, op: str, attrs: dict, weight: np.ndarray, axis: int | None,
                 bias: np.ndarray | None, source: str) -> None:  # fmt: skip
        super().__init__()
        self.op, self.attrs, self.axis, self.source = op, attrs, axis, source
        self.weight = nn.Parameter(torch.from_numpy(np.array(weight, np.float32)))
        self.bias = None
        if bias is not None:
            self.bias = nn.Parameter(torch.from_numpy(np.array(bias, np.float32)))
        self.input_quant: ActQuant | None = None  # set by OrtQdq: the bias scale depends on it
        self.register_buffer("on", torch.tensor(True))  # in the state dict: mixed precision

    @property
    def quantized(self) -> bool:
        return bool(self.on)

    @quantized.setter
    def quantized(self, value: bool) -> None:
        self.on.fill_(bool(value))

    # the interface edgekd.quant.sensitivity switches layers with
    @property
    def is_enabled(self) -> bool:
        return self.quantized

    def enable(self) -> None:
        self.quantized = True

    def disable(self) -> None:
        self.quantized = False

    def weight_scale(self) -> torch.Tensor:
        """max|w| / 127 per channel on `axis` (one scale for a per-tensor weight, axis None)."""
        w = self.weight.detach()
        dims = [d for d in range(w.dim()) if d != self.axis]
        amax = w.abs().amax(dim=dims) if dims else w.abs()
        return torch.where(amax > 0, amax / WEIGHT_RANGE[1], torch.ones_like(amax)).float()

    def qweight(self) -> torch.Tensor:
        if not self.quantized:
            return self.weight
        s = self.weight_scale()
        if self.axis is None:
            return torch.fake_quantize_per_tensor_affine(self.weight, float(s), 0, *WEIGHT_RANGE)
        return torch.fake_quantize_per_channel_affine(
            self.weight, s, torch.zeros_like(s, dtype=torch.int32), self.axis, *WEIGHT_RANGE
        )

    def bias_scale(self) -> torch.Tensor:
        assert self.input_quant is not None
        return (self.input_quant.scale.detach().float() * self.weight_scale()).reshape(-1)

    def qbias(self) -> torch.Tensor | None:
        if self.bias is None or not self.quantized or self.input_quant is None:
            return self.bias
        s = self.bias_scale()
        return self.bias + (torch.round(self.bias / s) * s - self.bias).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b, a = self.qweight(), self.qbias(), self.attrs
        if self.op == "Conv":
            if w.dim() != 4:
                raise StageError("only 2-D convolutions are supported in the ORT INT8 graph",
                                 value=f"{w.dim() - 2}-D Conv at {self.source}")  # fmt: skip
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if pads[:2] != pads[2:]:
                x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
                pads = [0, 0]
            return F.conv2d(x, w, b, tuple(a.get("strides", (1, 1))), tuple(pads[:2]),
                            tuple(a.get("dilations", (1, 1))), a.get("group", 1))  # fmt: skip
        if self.op == "Gemm":
            x = x.t() if a.get("transA", 0) else x
            y = a.get("alpha", 1.0) * (x @ (w.t() if a.get("transB", 0) else w))
            return y if b is None else y + a.get("beta", 1.0) * b
        y = x @ w  # MatMul
        return y if b is None else y + b


def _pool_pads(a: dict, n: int = 2):
    pads = list(a.get("pads", [0] * 2 * n))
    return pads[:n], pads[n:]


def _maxpool(x, a):
    k = tuple(a["kernel_shape"])
    lo, hi = _pool_pads(a)
    if lo != hi:
        x = F.pad(x, (lo[1], hi[1], lo[0], hi[0]), value=float("-inf"))
        lo = [0, 0]
    return F.max_pool2d(x, k, tuple(a.get("strides", k)), tuple(lo),
                        tuple(a.get("dilations", (1, 1))), bool(a.get("ceil_mode", 0)))  # fmt: skip


def _avgpool(x, a):
    k = tuple(a["kernel_shape"])
    lo, hi = _pool_pads(a)
    if lo != hi:
        raise StageError("asymmetric AveragePool padding is not supported", value=str(a))
    return F.avg_pool2d(x, k, tuple(a.get("strides", k)), tuple(lo), bool(a.get("ceil_mode", 0)),
                        bool(a.get("count_include_pad", 0)))  # fmt: skip


def _axes(a, ins):
    """A reduce/squeeze op's axes: its attribute (opset < 13/18) or its second input."""
    if "axes" in a:
        return [int(v) for v in a["axes"]]
    if len(ins) > 1 and ins[1] is not None:
        return [int(v) for v in ins[1].reshape(-1).tolist()]
    return None


def _reduce(fn, x, a, axes):
    axes = list(range(x.dim())) if axes is None else axes
    return fn(x, dim=axes, keepdim=bool(a.get("keepdims", 1)))


def _reshape(x, shape, a):
    shape = [int(v) for v in shape.reshape(-1).tolist()]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _clip(x, lo, hi):
    return torch.clamp(x, None if lo is None else float(lo), None if hi is None else float(hi))


_OPS = {  # op -> f(inputs, attrs); inputs are tensors (constants too)
    "Add": lambda i, a: i[0] + i[1],
    "Sub": lambda i, a: i[0] - i[1],
    "Mul": lambda i, a: i[0] * i[1],
    "Div": lambda i, a: i[0] / i[1],
    "Relu": lambda i, a: F.relu(i[0]),
    "Sigmoid": lambda i, a: torch.sigmoid(i[0]),
    "Tanh": lambda i, a: torch.tanh(i[0]),
    "HardSigmoid": lambda i, a: torch.clamp(a.get("alpha", 0.2) * i[0] + a.get("beta", 0.5), 0, 1),
    "HardSwish": lambda i, a: F.hardswish(i[0]),
    "LeakyRelu": lambda i, a: F.leaky_relu(i[0], a.get("alpha", 0.01)),
    "Clip": lambda i, a: _clip(i[0], *(list(i[1:]) + [None, None])[:2]),
    "Softmax": lambda i, a: torch.softmax(i[0], a.get("axis", -1)),
    "MaxPool": lambda i, a: _maxpool(i[0], a),
    "AveragePool": lambda i, a: _avgpool(i[0], a),
    "GlobalAveragePool": lambda i, a: i[0].mean(dim=tuple(range(2, i[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda i, a: i[0].amax(dim=tuple(range(2, i[0].dim())), keepdim=True),
    "ReduceMean": lambda i, a: _reduce(torch.mean, i[0], a, _axes(a, i)),
    "Flatten": lambda i, a: i[0].reshape(math.prod(i[0].shape[: a.get("axis", 1)]), -1),
    "Reshape": lambda i, a: _reshape(i[0], i[1], a),
    "Transpose": lambda i, a: i[0].permute(*a["perm"]) if "perm" in a else i[0].t(),
    "Concat": lambda i, a: torch.cat(list(i), dim=a["axis"]),
    "Identity": lambda i, a: i[0],
    "Erf": lambda i, a: torch.erf(i[0]),
    # a BatchNorm with no convolution to fold into (RepVGG's identity branch): its statistics
    # and affine stay as they were trained (constants of the graph)
    "BatchNormalization": lambda i, a: F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0,
                                                    a.get("epsilon", 1e-5)),
    "Exp": lambda i, a: torch.exp(i[0]),
    "Sqrt": lambda i, a: torch.sqrt(i[0]),
    "Neg": lambda i, a: -i[0],
    "Pow": lambda i, a: torch.pow(i[0], i[1]),
    "MatMul": lambda i, a: i[0] @ i[1],  # two activations (a MatMul with a weight is a layer)
    "ReduceSum": lambda i, a: _reduce(torch.sum, i[0], a, _axes(a, i)),
    "ReduceMax": lambda i, a: _reduce(torch.amax, i[0], a, _axes(a, i)),
    "Slice": lambda i, a: _slice(i),
    "Squeeze": lambda i, a: _squeeze(i[0], _axes(a, i)),
    "Unsqueeze": lambda i, a: i[0].reshape(_unsq(i[0].shape, _axes(a, i))),
}


def _slice(i):
    x, starts, ends = i[0], i[1], i[2]
    n = len(starts.reshape(-1))
    axes = i[3] if len(i) > 3 and i[3] is not None else torch.arange(n)
    steps = i[4] if len(i) > 4 and i[4] is not None else torch.ones(n, dtype=torch.int64)
    index = [slice(None)] * x.dim()
    for st, en, ax, sp in zip(*(t.reshape(-1).tolist() for t in (starts, ends, axes, steps)),
                              strict=True):  # fmt: skip
        if sp < 0:
            raise StageError("a Slice with a negative step is not supported", value=str(sp))
        dim = x.shape[ax]
        index[ax] = slice(max(min(st, dim), -dim), max(min(en, dim), -dim - 1), sp)
    return x[tuple(index)]


def _squeeze(x, axes):
    return x.squeeze(tuple(axes)) if axes else x.squeeze()


def _unsq(shape, axes):
    out = list(shape)
    for ax in sorted(ax % (len(shape) + len(axes)) for ax in axes):
        out.insert(ax, 1)
    return out


class OrtQdq(nn.Module):
    """ONNX Runtime's Q/DQ graph of a model, runnable and trainable in torch (see the module
    docstring). `template`: the ORT Q/DQ ModelProto (as written by `quantize_for_ort`)."""

    def __init__(self, template, learn_ranges: bool = False) -> None:
        super().__init__()
        import onnx
        from onnx import numpy_helper

        g = template.graph
        self.template = template
        self.learn_ranges = learn_ranges
        init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        producer = {o: n for n in g.node for o in n.output}
        consumers: dict[str, list] = {}
        for n in g.node:
            for i, t in enumerate(n.input):
                consumers.setdefault(t, []).append((n, i))
        self.input_name = g.input[0].name
        self.output_names = [o.name for o in g.output]
        self.layers = nn.ModuleDict()
        self.quants = nn.ModuleDict()
        self.consts: dict[str, torch.Tensor] = {}
        self._steps: list[tuple] = []  # (kind, op/key, attrs, inputs, outputs)
        self.weight_dq: dict[str, str] = {}  # layer key -> its weight DQ node name
        self.bias_dq: dict[str, str] = {}
        self.act_nodes: dict[str, list[str]] = {}  # quant key -> its Q and DQ node names
        shared: dict[tuple, str] = {}  # (scale, zero point) initializer names -> quant key
        used_l: set[str] = set()
        used_q: set[str] = set()
        self._q_of: dict[str, str] = {}  # Q output tensor -> quant key

        def dq_const(name: str):  # the DequantizeLinear of an initializer that makes `name`
            n = producer.get(name)
            ok = n is not None and n.op_type == "DequantizeLinear" and n.input[0] in init
            return n if ok else None

        layer_inputs = set()  # DQ outputs a layer holds as its trainable weight or bias
        for node in g.node:
            if node.op_type in LAYER_OPS and dq_const(node.input[1]):
                layer_inputs.add(node.input[1])
                if len(node.input) > 2 and dq_const(node.input[2]):
                    layer_inputs.add(node.input[2])

        for node in g.node:
            op, a = node.op_type, _attrs(node)
            if node.domain not in ("", "ai.onnx"):
                raise StageError("ONNX Runtime's INT8 graph has an op edgekd cannot train",
                                 value=f"{node.domain}.{op} at {node.name}")  # fmt: skip
            if op == "DequantizeLinear" and node.input[0] in init:
                if node.output[0] not in layer_inputs:  # a constant (a Mul's factor, say)
                    self.consts[node.output[0]] = torch.from_numpy(_dequant(node, init))
                continue
            if op in LAYER_OPS and dq_const(node.input[1]):
                wdq = dq_const(node.input[1])
                bias = bdq = None
                if len(node.input) > 2 and node.input[2]:
                    bdq = dq_const(node.input[2])
                    if bdq is not None:
                        bias = _dequant(bdq, init)
                    elif node.input[2] in init:
                        bias = init[node.input[2]]
                key = _module_name(node.name, used_l)
                per_tensor = np.size(init[wdq.input[1]]) == 1
                axis = None if per_tensor else _attrs(wdq).get("axis", 1)
                w = _dequant(wdq, init)
                source = torch_name(node.name)
                sources = {m.source for m in self.layers.values()}
                source = next(f"{source}#{i}" for i in range(1, len(sources) + 2)
                              if f"{source}#{i}" not in sources) if source in sources else source
                layer = QLayer(op, a, w, axis, bias, source)
                self.layers[key] = layer
                self.weight_dq[key] = wdq.name
                if bdq is not None:
                    self.bias_dq[key] = bdq.name
                self._steps.append(("layer", key, None, (node.input[0],), tuple(node.output)))
                continue
            if op == "QuantizeLinear":
                if np.size(init[node.input[1]]) != 1:
                    raise StageError("per-channel activation quantization is not supported",
                                     value=node.name)  # fmt: skip
                params = tuple(node.input[1:3])
                key = shared.get(params)  # ORT reuses one scale for a Flatten's output, say
                if key is None:
                    scale = float(init[node.input[1]].reshape(-1)[0])
                    zp_t = init[node.input[2]] if len(node.input) > 2 else np.zeros((), np.uint8)
                    qtype = 2 if zp_t.dtype == np.uint8 else 3
                    key = shared[params] = _module_name("/" + node.input[0].strip("/") + "/Q",
                                                        used_q)  # fmt: skip
                    self.quants[key] = ActQuant(scale, int(zp_t.reshape(-1)[0]), _QRANGE[qtype],
                                                learn_ranges)  # fmt: skip
                self.act_nodes.setdefault(key, []).append(node.name)
                self._q_of[node.output[0]] = key
                self._steps.append(("quant", key, None, (node.input[0],), (node.output[0],)))
                continue
            if op == "DequantizeLinear":
                src = node.input[0]
                if src not in self._q_of:
                    raise StageError("a DequantizeLinear that does not follow a QuantizeLinear",
                                     value=node.name)  # fmt: skip
                qnode = producer[src]
                same = all(
                    a_ == b_ or np.array_equal(init.get(a_), init.get(b_))
                    for a_, b_ in zip(node.input[1:], qnode.input[1:], strict=False)
                )
                if not same:
                    raise StageError("a Q/DQ pair with two different scales", value=node.name)
                self.act_nodes[self._q_of[src]].append(node.name)
                self._steps.append(("alias", None, None, (src,), (node.output[0],)))
                continue
            if op == "Constant":
                self.consts[node.output[0]] = torch.from_numpy(
                    np.array(numpy_helper.to_array(a["value"]))
                )
                continue
            if op not in _OPS:
                raise StageError(
                    "ONNX Runtime's INT8 graph has an op edgekd cannot train",
                    value=f"{op} at {node.name}",
                    fix="use --target with TensorRT, or a student without this op",
                )
            self._steps.append(("op", op, a, tuple(node.input), tuple(node.output)))
        for name, arr in init.items():  # shapes, axes, clip bounds, float constants
            if arr.dtype.kind == "f" or arr.dtype == np.int64:
                self.consts.setdefault(name, torch.from_numpy(np.array(arr)))
        # the bias scale of each layer is its input's activation scale
        layer_input = {s[1]: s[3][0] for s in self._steps if s[0] == "layer"}
        for key, layer in self.layers.items():
            src = layer_input[key]
            dq = producer.get(src)
            if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in self._q_of:
                layer.input_quant = self.quants[self._q_of[dq.input[0]]]
            elif key in self.bias_dq:
                raise StageError("a quantized bias whose input is not quantized", value=key)
        self.neighbours = self._neighbours()
        del onnx

    def _neighbours(self) -> dict[str, set[str]]:
        """Quant key -> the layers its tensor connects through ops that are not layers (Add,
        Mul, pooling, activations...): the layer that made it and the layers that read it.
        The model's input and output count as "" (a float neighbour)."""
        made_by: dict[str, tuple] = {}
        readers: dict[str, list[tuple]] = {}
        for s in self._steps:
            for o in s[4]:
                made_by[o] = s
            for i in s[3]:
                readers.setdefault(i, []).append(s)

        def up(t, seen):
            s = made_by.get(t)
            if s is None or t in seen:
                return {""} if s is None else set()
            seen.add(t)
            if s[0] == "layer":
                return {s[1]}
            return set().union(*(up(i, seen) for i in s[3] if i and i not in self.consts))

        def down(t, seen):
            if t in seen:
                return set()
            seen.add(t)
            out = {""} if t in self.output_names else set()
            for s in readers.get(t, []):
                out |= {s[1]} if s[0] == "layer" else set().union(*(down(o, seen) for o in s[4]))
            return out

        return {
            key: up(s[3][0], set()) | down(s[4][0], set())
            for s in self._steps if s[0] == "quant" for key in [s[1]]
        }  # fmt: skip

    def set_float(self, layers) -> None:
        """Run the named layers (keys of `self.layers`) in float and every other one in INT8.
        An activation quantizer stays on while any layer next to its tensor is INT8 (that
        layer's integer kernel needs it), and goes when all of them are float, so a float
        region runs as plain float ops, with no Q/DQ left inside it."""
        layers = set(layers)
        unknown = layers - set(self.layers)
        if unknown:
            raise StageError("no such layer in the INT8 graph", value=", ".join(sorted(unknown)))
        for key, layer in self.layers.items():
            layer.quantized = key not in layers
        for key, near in self.neighbours.items():
            self.quants[key].enabled = any(n and self.layers[n].quantized for n in near)

    def float_layers(self) -> list[str]:
        return [k for k, m in self.layers.items() if not m.quantized]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {self.input_name: x}

        def val(name):
            if name in env:
                return env[name]
            if name in self.consts:
                return self.consts[name].to(x.device)
            if name == "":
                return None
            raise StageError("the INT8 graph reads a tensor nothing produced", value=name)

        for kind, key, a, ins, outs in self._steps:
            if kind == "layer":
                env[outs[0]] = self.layers[key](val(ins[0]))
            elif kind == "quant":
                env[outs[0]] = self.quants[key](val(ins[0]))
            elif kind == "alias":
                env[outs[0]] = env[ins[0]]
            else:
                args = [val(i) if i else None for i in ins]
                env[outs[0]] = _OPS[key](args, a)
        out = [env[o] for o in self.output_names]
        return out[0] if len(out) == 1 else tuple(out)

    def get_classifier(self) -> nn.Module:
        """The last Gemm/MatMul: the embedding taps read its input."""
        heads = [m for m in self.layers.values() if m.op in ("Gemm", "MatMul")]
        return heads[-1] if heads else nn.Identity()

    def extra_state(self) -> dict:
        """What `from_state` needs besides the state dict (weights_only-loadable)."""
        blob = self.template.SerializeToString()
        return {"format": FORMAT, "template": torch.frombuffer(bytearray(blob), dtype=torch.uint8),
                "learn_ranges": self.learn_ranges}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict, weights: dict | None = None) -> OrtQdq:
        import onnx

        model = cls(onnx.load_from_string(bytes(state["template"].numpy().tobytes())),
                    learn_ranges=bool(state.get("learn_ranges")))  # fmt: skip
        if weights is not None:
            model.load_state_dict(weights)
        return model.eval()


def is_ort_state(state) -> bool:
    return isinstance(state, dict) and state.get("format") == FORMAT


def _dequant(node, init) -> np.ndarray:
    x = init[node.input[0]].astype(np.float64)
    s = init[node.input[1]].astype(np.float64)
    zp = init[node.input[2]].astype(np.float64) if len(node.input) > 2 else np.zeros_like(s)
    if s.ndim == 1 and s.size > 1:
        shape = [1] * x.ndim
        shape[_attrs(node).get("axis", 1)] = -1
        s, zp = s.reshape(shape), zp.reshape(shape)
    return np.asarray((x - zp) * s, dtype=np.float32)


def drop_pre_relu_pairs(model) -> int:
    """Remove, in place, the Q/DQ pair ORT's quantizer leaves in front of a kept ReLU
    (`X -> Q1 -> DQ1 -> Relu -> Q2`, Q1 and DQ1 read by nothing else): the ReLU then reads X.
    Returns how many pairs went.

    ONNX Runtime folds `Relu -> Q2` into Q2 when Q2's zero point is its type's minimum (a UINT8
    zero point of 0 clips what ReLU clips), so `DQ -> Conv/Add -> Relu -> Q2` becomes one
    QLinearConv or QLinearAdd whose output is Q2's. With Q1 in place, ORT keeps Q1 as the
    Conv/Add's output and a `DequantizeLinear -> QuantizeLinear` re-quantization after it for
    Q2 (seen after every residual Add of resnet18: 7 float passes over the activations). The
    graph without Q1 computes Q2(relu(X)), which is what ORT runs after its fusion, so the
    torch module trains exactly that. Where calibration gave Q1 the ReLU's range (ORT does for
    a removable activation) nothing changes numerically: Q1 then already clips at 0 and
    rounds on Q2's grid."""
    g = model.graph
    inits = {t.name for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    readers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in g.output}
    drop: set[str] = set()
    for relu in g.node:
        if relu.op_type != "Relu":
            continue
        dq1 = producer.get(relu.input[0])
        if dq1 is None or dq1.op_type != "DequantizeLinear" or dq1.input[0] in inits:
            continue
        q1 = producer.get(dq1.input[0])
        after = readers.get(relu.output[0], [])
        if (q1 is None or q1.op_type != "QuantizeLinear" or q1.input[0] in inits
                or readers.get(q1.output[0]) != [dq1] or readers.get(dq1.output[0]) != [relu]
                or {q1.output[0], dq1.output[0], relu.output[0]} & outputs
                or not after or any(n.op_type != "QuantizeLinear" for n in after)):  # fmt: skip
            continue
        relu.input[0] = q1.input[0]
        drop |= {q1.name, dq1.name}
    if drop:
        _set_nodes(g, [n for n in g.node if n.name not in drop])
    return len(drop) // 2


def _set_nodes(g, nodes: list, added: list | tuple = ()) -> None:
    """Make `nodes` the node list of graph `g`, and keep only the initializers (of `g`, then
    `added`) that some node still reads. Both are copied: a repeated field cannot take back
    elements it held."""
    import onnx

    nodes = [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes]
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    inits = [onnx.TensorProto.FromString(t.SerializeToString())
             for t in [*g.initializer, *added] if t.name in used]  # fmt: skip
    del g.initializer[:]
    g.initializer.extend(inits)


def ort_qdq_from(qdq_path: str | Path, learn_ranges: bool = False) -> OrtQdq:
    """The trainable module of an ORT Q/DQ file (its pre-ReLU pairs dropped, see above)."""
    import onnx

    template = onnx.load(str(qdq_path))
    drop_pre_relu_pairs(template)
    return OrtQdq(template, learn_ranges=learn_ranges).eval()


def ort_qdq_of(
    float_model: nn.Module,
    input_shape,
    calib_ds,
    batch_size: int = 64,
    method: str = "max",
    percentile: float = 99.99,
    learn_ranges: bool = False,
) -> OrtQdq:
    """ONNX Runtime's INT8 graph of `float_model` as a trainable module: the model exported to
    FP32 ONNX, BatchNorm folded and Q/DQ placed by ORT's static quantizer with activation
    ranges calibrated on `calib_ds` by `method` (max, entropy or percentile)."""
    import tempfile

    from edgekd.export import export_onnx
    from edgekd.quant.ort_layout import quantize_for_ort

    with tempfile.TemporaryDirectory() as d:
        fp32 = export_onnx(float_model.eval(), Path(d) / "fp32.onnx", input_shape).path
        # the ReLUs stay in the graph: ORT would fold each into its Q's zero point, and a
        # float region (set_float) that drops that Q would lose the ReLU with it
        qdq = quantize_for_ort(fp32, Path(d) / "qdq.onnx", calib_ds, batch_size,
                               method=method, percentile=percentile,
                               keep_activations=True)  # fmt: skip
        return ort_qdq_from(qdq, learn_ranges)


def ranges_problems(model: OrtQdq) -> dict[str, str]:
    """Activation quantizers whose scale is not finite or not positive (`bad_ranges`)."""
    out = {}
    for key, q in model.quants.items():
        s = float(q.scale)
        if not math.isfinite(s):
            out[key] = "not finite"
        elif s <= 0:
            out[key] = "zero"
    return out


@torch.no_grad()
def export_ort(model: OrtQdq, out_path: str | Path) -> Path:
    """Write the trained graph: integer weights and biases, scales and zero points from the
    module, into a copy of its ORT template (atomically). Layers kept in float get their float
    weight instead of their DequantizeLinear."""
    import onnx
    from onnx import numpy_helper

    from edgekd._io import atomic_path

    m = onnx.ModelProto()
    m.CopyFrom(model.template)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    nodes = {n.name: n for n in g.node}

    def put(name: str, arr: np.ndarray) -> None:  # same name, same shape, new values
        arr = arr.reshape(tuple(inits[name].dims))
        inits[name].CopyFrom(numpy_helper.from_array(arr, name))

    dropped: set[str] = set()  # node names; the node list is rebuilt once at the end
    replaced: dict[str, object] = {}  # node name -> the Identity that takes its place
    added = []  # float weights of float layers
    for key, layer in model.layers.items():
        wdq = nodes[model.weight_dq[key]]
        if not layer.quantized:  # the float weight straight into the layer
            added.append(numpy_helper.from_array(layer.weight.detach().cpu().numpy(),
                                                 wdq.output[0]))  # fmt: skip
            dropped.add(wdq.name)
            if key in model.bias_dq:
                bdq = nodes[model.bias_dq[key]]
                added.append(numpy_helper.from_array(layer.bias.detach().cpu().numpy(),
                                                     bdq.output[0]))  # fmt: skip
                dropped.add(bdq.name)
            continue
        s = layer.weight_scale()
        q = torch.round(layer.qweight() / _bcast(s, layer.weight.dim(), layer.axis))
        put(wdq.input[0], q.cpu().numpy().astype(np.int8))
        put(wdq.input[1], s.cpu().numpy().astype(np.float32))
        if key in model.bias_dq:
            bdq = nodes[model.bias_dq[key]]
            bs = layer.bias_scale()
            put(bdq.input[0], torch.round(layer.bias / bs).cpu().numpy().astype(np.int32))
            put(bdq.input[1], bs.cpu().numpy().astype(np.float32))
    for key, quant in model.quants.items():
        for name in model.act_nodes[key]:
            n = nodes[name]
            put(n.input[1], np.array(float(quant.scale), np.float32))
            zp_dtype = numpy_helper.to_array(inits[n.input[2]]).dtype
            put(n.input[2], np.array(int(quant.zero_point), zp_dtype))
        if quant.enabled:
            continue
        for name in model.act_nodes[key]:  # a float region: its Q/DQ pairs become Identity
            n = nodes[name]
            if n.op_type == "DequantizeLinear":
                src = next(nodes[q].input[0] for q in model.act_nodes[key]
                           if nodes[q].output[0] == n.input[0])  # fmt: skip
                replaced[name] = onnx.helper.make_node("Identity", [src], [n.output[0]],
                                                       name=name)  # fmt: skip
            else:
                dropped.add(name)
    _set_nodes(g, [replaced.get(n.name, n) for n in g.node if n.name not in dropped], added)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        onnx.save(m, str(tmp))
    return out_path


def _bcast(s: torch.Tensor, ndim: int, axis: int | None) -> torch.Tensor:
    if axis is None:
        return s
    shape = [1] * ndim
    shape[axis] = -1
    return s.reshape(shape)


__all__ = ["FORMAT", "ActQuant", "OrtQdq", "QLayer", "drop_pre_relu_pairs", "export_ort",
           "is_ort_state", "ort_qdq_from", "ort_qdq_of", "ranges_problems",
           "torch_name"]  # fmt: skip
