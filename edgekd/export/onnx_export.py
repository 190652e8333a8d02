"""ONNX export: named input/output, dynamic batch, opset 17, checked, written atomically.

nn.Modules (float or Model Optimizer fake-quant) go through the TorchScript-based exporter,
which turns modelopt's quantizers into QuantizeLinear/DequantizeLinear pairs. torch.export
programs go through the dynamo exporter (opset 18, its lowest).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd._io import atomic_path
from edgekd.errors import StageError
from edgekd.outputs import first_output

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
DEFAULT_OPSET = 17
# Integer-op forms TensorRT cannot parse: edgekd must only ever emit Q/DQ pairs.
FORBIDDEN_OPS = frozenset(
    {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}
)


@dataclass(frozen=True)
class ExportInfo:
    path: Path
    opset: int
    op_counts: dict[str, int]

    @property
    def qdq_pairs(self) -> int:
        return min(
            self.op_counts.get("QuantizeLinear", 0), self.op_counts.get("DequantizeLinear", 0)
        )


def _check(path: Path) -> ExportInfo:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as e:
        raise StageError(
            "exported ONNX fails onnx.checker", value=str(e).splitlines()[0][:200]
        ) from None
    info = onnx_info(path)
    bad = sorted(FORBIDDEN_OPS & set(info.op_counts))
    if bad:
        raise StageError("export produced ops TensorRT cannot parse", value=", ".join(bad))
    return info


def onnx_info(path: str | Path) -> ExportInfo:
    """The opset and op counts of an ONNX file."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts = Counter(n.op_type for n in model.graph.node)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ExportInfo(Path(path), opset, dict(counts))


def export_onnx(
    model: nn.Module,
    path: str | Path,
    input_shape: tuple[int, int, int],
    *,
    opset: int = DEFAULT_OPSET,
    program: Any = None,
) -> ExportInfo:
    """Export `model` (or the torch.export `program`) to `path` with a dynamic batch axis."""
    path = Path(path)
    example = (torch.zeros(1, *input_shape),)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                if program is not None:
                    torch.onnx.export(
                        program,
                        example,
                        str(tmp),
                        input_names=[INPUT_NAME],
                        output_names=[OUTPUT_NAME],
                        opset_version=max(opset, 18),
                        dynamo=True,
                        external_data=False,
                    )
                else:
                    model.cpu().eval()  # ONNX export traces on the CPU
                    torch.onnx.export(
                        model,
                        example,
                        str(tmp),
                        input_names=[INPUT_NAME],
                        output_names=[OUTPUT_NAME],
                        opset_version=opset,
                        dynamo=False,
                        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                    )
        except StageError:
            raise
        except Exception as e:
            raise StageError(
                "ONNX export failed", value=type(model).__name__, fix=str(e).splitlines()[0][:200]
            ) from None
        info = _check(tmp)
    return ExportInfo(path, info.opset, info.op_counts)


class _HalfPrecision(nn.Module):
    """The model in FP16 between an FP32 input and an FP32 output (two Cast nodes), so an
    FP16 ONNX keeps the same interface as the FP32 one."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x.half())
        return first_output(out).float()


def export_onnx_fp16(
    model: nn.Module, path: str | Path, input_shape: tuple[int, int, int]
) -> ExportInfo:
    """An FP16 ONNX of `model` (weights and activations FP16, input/output FP32): what a
    strongly typed TensorRT build turns into an FP16 engine. `model` is not modified."""
    import copy

    return export_onnx(_HalfPrecision(copy.deepcopy(model).cpu().eval()), path, input_shape)
