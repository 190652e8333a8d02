"""Residual Adds quantized the way TensorRT fuses them.

TensorRT fuses an element-wise Add into the convolution that produces one of its inputs, in
INT8, only when the Add's other input (the residual, or skip, branch) is quantized too: the
developer guide's explicit-quantization chapter ("quantize the residual input"), NVIDIA's
QAT ResNet (a `residual_quantizer` on the identity branch), and Model Optimizer's ONNX
quantizer (`graph_utils.build_non_residual_input_map`: the input on the longer path from the
two branches' common ancestor is the conv branch and stays unquantized; the other gets Q/DQ).
Model Optimizer's torch quantizer only quantizes module inputs, so a residual Add, which is a
function call inside a block's `forward`, stays in float and splits the engine at every block.

Here one forward pass records the model's data flow (a `TorchFunctionMode` sees every torch
call; forward hooks see which module returned each tensor). For each Add of two activations:
- the input produced by a convolution (through a BatchNorm) is the branch TensorRT fuses the
  Add into; when both are, the one on the longer path from their common ancestor;
- the other input is the residual. It is quantized where it is made: a `ResidualTap` (an
  8-bit per-tensor input quantizer once Model Optimizer converts it) on the output of the
  module that returns it, so every
  consumer of that tensor (the Add and the next block's convolutions) reads the one Q/DQ;
  those consumers' own input quantizers, now redundant, are switched off after calibration;
- an Add that TensorRT cannot fuse (no convolution on either side, both sides symmetric, a
  residual made inline with no module returning it) stays in float, with its reason.
QAT then trains through the residual quantizers, so the Q/DQ graph exported is the one trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

ATTR = "edgekd_residual"  # the tap's name on the module whose output is a residual
_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.add_, torch.Tensor.__add__,
         torch.Tensor.__iadd__, torch.Tensor.__radd__}  # fmt: skip
_CONV = {"conv1d", "conv2d", "conv3d", "_convolution", "convolution"}
_THROUGH = {"batch_norm"}  # folded into the convolution by TensorRT
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


@dataclass
class ResidualAdd:
    index: int  # the Add's position among the model's Adds, in execution order
    quantized: str | None  # the module whose output gets the residual quantizer
    reason: str  # why that input, or why the Add stays in float


@dataclass
class ResidualPlan:
    adds: list[ResidualAdd] = field(default_factory=list)
    consumers: dict[str, list[str]] = field(default_factory=dict)  # module -> readers of it
    dropped: list[str] = field(default_factory=list)  # input quantizers switched off

    @property
    def modules(self) -> list[str]:
        return sorted({a.quantized for a in self.adds if a.quantized})

    def to_record(self) -> dict:
        return {
            "adds": len(self.adds),
            "quantized": sum(a.quantized is not None for a in self.adds),
            "modules": self.modules,
            "input_quantizers_dropped": self.dropped,
            "left_float": [asdict(a) for a in self.adds if a.quantized is None],
        }


class _Flow(TorchFunctionMode):
    """Every torch call of one forward pass as a node: its op name and input nodes."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[str, list[int], bool]] = []  # (op, input nodes, is a 2-tensor add)
        self.node: dict[int, int] = {}  # id(tensor) -> its latest node
        self._keep: list[torch.Tensor] = []  # no id is reused during the pass

    def of(self, t) -> int | None:
        return self.node.get(id(t)) if isinstance(t, torch.Tensor) else None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        ins: list[int] = []

        def walk(a) -> None:
            if isinstance(a, torch.Tensor):
                if (n := self.node.get(id(a))) is not None:
                    ins.append(n)
            elif isinstance(a, (list, tuple)):
                for x in a:
                    walk(x)

        walk(args)
        walk(list(kwargs.values()))
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        known = all(self.of(t) is not None for t in tensors)
        is_add = func in _ADDS and len(tensors) == 2 and known
        for o in out if isinstance(out, (list, tuple)) else [out]:
            if isinstance(o, torch.Tensor):
                self.ops.append((getattr(func, "__name__", str(func)), ins, is_add))
                self.node[id(o)] = len(self.ops) - 1
                self._keep.append(o)
        return out


def _conv_made(ops, n: int) -> bool:
    """Whether node `n` is a convolution's output, through BatchNorms."""
    while n >= 0:
        op, ins, _ = ops[n]
        if op in _CONV:
            return True
        if op not in _THROUGH or not ins:
            return False
        n = ins[0]
    return False


def _distances(ops, n: int) -> dict[int, int]:
    """Shortest number of ops from each ancestor of node `n` down to `n` (`n` itself: 0)."""
    dist, frontier = {n: 0}, [n]
    while frontier:
        nxt = []
        for v in frontier:
            for u in ops[v][1] if v >= 0 else []:
                if u not in dist:
                    dist[u] = dist[v] + 1
                    nxt.append(u)
        frontier = nxt
    return dist


def plan_residuals(model: nn.Module, example: torch.Tensor) -> ResidualPlan:
    """Which module outputs to quantize so that TensorRT can fuse every residual Add it can
    (one forward pass of `model` on `example`, a batch of one; `model` is not changed)."""
    flow, outs, ins, hooks = _Flow(), {}, {}, []
    containers = {n for n, m in model.named_modules() if isinstance(m, _CONTAINERS)}

    def reads(name: str, args) -> None:  # a pre-hook must return None: it would replace args
        ins.setdefault(name, flow.of(args[0]) if args else None)

    def made(name: str, out) -> None:
        outs.setdefault(flow.of(out), []).append(name)

    for name, m in model.named_modules():
        hooks.append(m.register_forward_pre_hook(lambda _m, i, name=name: reads(name, i)))
        hooks.append(m.register_forward_hook(lambda _m, _i, o, name=name: made(name, o)))
    was_training = model.training
    try:
        model.eval()
        x = example[:1].detach().clone()
        flow.node[id(x)] = -1
        with torch.no_grad(), flow:
            model(x)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    plan = ResidualPlan()
    ops = flow.ops
    for _, add_ins, _ in (o for o in ops if o[2]):
        a, b, k = add_ins[0], add_ins[1], len(plan.adds)
        conv_a, conv_b = _conv_made(ops, a), _conv_made(ops, b)
        if not (conv_a or conv_b):
            plan.adds.append(ResidualAdd(k, None, "no convolution on either input: TensorRT "
                                         "fuses an Add only into a convolution"))  # fmt: skip
            continue
        if conv_a and conv_b:
            da, db = _distances(ops, a), _distances(ops, b)
            common = set(da) & set(db)
            if not common:
                plan.adds.append(ResidualAdd(k, None, "the two inputs share no ancestor"))
                continue
            lca = min(common, key=lambda v: (da[v] + db[v], v))
            if da[lca] == db[lca]:
                plan.adds.append(ResidualAdd(k, None, "both inputs are convolutions the same "
                                             "distance from their common input"))  # fmt: skip
                continue
            residual = a if da[lca] < db[lca] else b
            why = "both inputs are convolutions: the shorter branch is the residual"
        else:
            residual = b if conv_a else a
            why = "the other input is a convolution's output (TensorRT fuses the Add into it)"
        makers = [m for m in outs.get(residual, []) if m and m not in containers]
        if residual < 0 or not makers:
            where = (
                "is the model's input" if residual < 0 else "is made inline (no module returns it)"
            )
            plan.adds.append(ResidualAdd(k, None, f"the residual {where}: no module to quantize"))
            continue
        maker = max(makers, key=lambda m: m.count("."))  # the innermost module returning it
        plan.adds.append(ResidualAdd(k, maker, why))
        plan.consumers[maker] = sorted(m for m, i in ins.items() if i == residual and m)
    return plan


class ResidualTap(nn.Module):
    """The identity; Model Optimizer turns it into an INT8 input quantizer (registered in
    `edgekd.quant.modelopt_int8`), so the residual is calibrated, trained and exported like
    every other quantized input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _through_tap(module: nn.Module, _inputs, output):
    return getattr(module, ATTR)(output)


def attach(model: nn.Module, modules) -> None:
    """Give each named module a residual tap on its output (a child and a forward hook);
    before Model Optimizer converts the model, or restores a converted one."""
    for name in modules:
        m = model.get_submodule(name)
        if not hasattr(m, ATTR):
            m.add_module(ATTR, ResidualTap())
            m.register_forward_hook(_through_tap)


def attached(state: dict) -> list[str]:
    """The modules that carry a residual tap, read from a Model Optimizer state."""
    found: list[str] = []
    suffix = f".{ATTR}.input_quantizer"

    def walk(v) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "quantizer_state" and isinstance(x, dict):
                    found.extend(n[: -len(suffix)] for n in x if n.endswith(suffix))
                else:
                    walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)

    walk(state)
    return sorted(set(found))


def drop_redundant(model: nn.Module, plan: ResidualPlan) -> list[str]:
    """Switch off the input quantizers of modules that read a residual-quantized tensor (it
    is already on the INT8 grid, at the range calibrated on the same tensor). Returns them."""
    off = []
    for maker, readers in plan.consumers.items():
        tap = getattr(model.get_submodule(maker), ATTR, None)
        if not getattr(getattr(tap, "input_quantizer", None), "is_enabled", False):
            continue
        for r in readers:
            q = getattr(model.get_submodule(r), "input_quantizer", None)
            if q is not None and q.is_enabled:
                q.disable()
                off.append(r)
    return sorted(off)


__all__ = ["ResidualAdd", "ResidualPlan", "ResidualTap", "attach", "attached",
           "drop_redundant", "plan_residuals"]  # fmt: skip
