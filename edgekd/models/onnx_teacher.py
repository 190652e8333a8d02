"""A teacher held only as ONNX, run in ONNX Runtime on the CPU.

`OnnxTeacher` is an `nn.Module` whose forward runs the ONNX model: the logit losses (kd, dkd,
...) and the search's output-only DisWOT need nothing else, and distillation caches the
teacher's outputs once when the training images are not augmented (`--teacher-cache`), so
ONNX Runtime's speed matters once, not per epoch. Its layers cannot be hooked: feature losses
are refused before any work (`opaque_kind`).

What the file must be: one float32 (or float16) input [N, C, H, W] and a first output
[N, classes]; a fixed batch dimension is served in chunks of that size; an output that is
already a softmax (rows of probabilities) is turned back into logits (log p: the same softmax).
External-data tensors must lie beside the model file: a location that leaves its folder is
refused before ONNX Runtime would read it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.errors import ModelLoadError

_FLOATS = {1: np.float32, 10: np.float16}  # TensorProto.FLOAT, FLOAT16


def opaque_kind(module: nn.Module) -> str | None:
    """'TorchScript' or 'ONNX' for a teacher whose layers cannot be hooked, else None."""
    if isinstance(module, torch.jit.ScriptModule):
        return "TorchScript"
    if isinstance(module, OnnxTeacher):
        return "ONNX"
    return None


def _tensors(graph):
    """Every TensorProto of `graph`: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _tensors(g)


def _escaping_external_data(model, folder: Path) -> str | None:
    """The first external-data location that is absolute or leaves `folder`, if any."""
    root = folder.resolve()
    for t in _tensors(model.graph):
        if t.data_location != 1:  # TensorProto.EXTERNAL
            continue
        loc = next((e.value for e in t.external_data if e.key == "location"), "")
        target = (folder / loc).resolve()
        if Path(loc).is_absolute() or root not in target.parents:
            return loc
    return None


def _dims(value_info) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in value_info.type.tensor_type.shape.dim]  # fmt: skip


class OnnxTeacher(nn.Module):
    """forward(x [N, C, H, W]) -> logits [N, classes] on x's device, computed by ONNX Runtime."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        super().__init__()
        import onnx
        import onnxruntime as ort

        path = Path(path)
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as e:
            why = str(e).splitlines()[0][:160] if str(e) else "re-export it"
            raise ModelLoadError("cannot read the ONNX teacher", value=str(path), fix=why) from None
        bad = _escaping_external_data(proto, path.parent)
        if bad is not None:
            raise ModelLoadError(
                "the ONNX teacher's external data lies outside its folder",
                value=f"{path}: {bad}",
                fix="re-save it with its weights inside the model file or beside it",
            )
        inits = {i.name for i in proto.graph.initializer}
        inputs = [i for i in proto.graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise ModelLoadError(
                "the ONNX teacher must take exactly one input (the image batch)",
                value=f"{path}: inputs {', '.join(i.name for i in inputs) or 'none'}",
                fix="export the classifier with a single [N, C, H, W] input",
            )
        dims = _dims(inputs[0])
        if len(dims) != 4:
            raise ModelLoadError(
                "the ONNX teacher's input must be [N, C, H, W]",
                value=f"{path}: {inputs[0].name} {dims}",
                fix="export the classifier with a 4-D image input",
            )
        elem = inputs[0].type.tensor_type.elem_type
        if elem not in _FLOATS:
            raise ModelLoadError(
                "the ONNX teacher's input must be float32 or float16",
                value=f"{path}: {inputs[0].name} is {onnx.TensorProto.DataType.Name(elem)}",
                fix="export the classifier with a float image input",
            )
        self._dtype = _FLOATS[elem]
        self.params = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        self.input_name = inputs[0].name
        self.batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
        chw = dims[1:]
        static = all(isinstance(d, int) and d > 0 for d in chw)
        self.input_shape = tuple(int(d) for d in chw) if static else None
        del proto
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or max(1, torch.get_num_threads())
        opts.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelLoadError(
                "ONNX Runtime cannot load the ONNX teacher",
                value=f"{path}: {str(e).strip().splitlines()[0][:160]}",
                fix="check that it runs with onnxruntime (standard ops, a supported opset)",
            ) from None
        self.source = str(path)
        self.probabilities: bool | None = None  # a softmax output? (seen at the first run)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from edgekd.backends.onnxruntime import run_padded

        arr = x.detach().to("cpu", torch.float32).numpy().astype(self._dtype, copy=False)
        out = torch.from_numpy(np.ascontiguousarray(run_padded(self._sess, self.input_name, arr,
                                                                self.batch)))  # fmt: skip
        if self.probabilities is None:  # a softmax head: every row non-negative, summing to 1
            rows = out.double()
            self.probabilities = bool(
                rows.dim() == 2 and rows.numel() > 0 and (rows >= 0).all()
                and torch.allclose(rows.sum(1), torch.ones(len(rows), dtype=rows.dtype), atol=1e-3)
            )  # fmt: skip
        if self.probabilities:  # log p: logits up to a constant per row, the same softmax
            out = out.clamp_min(1e-12).log()
        return out.to(x.device)
