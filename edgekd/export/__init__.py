"""ONNX export (float and Q/DQ) and ORT-vs-torch parity."""

from edgekd.export.onnx_export import DEFAULT_OPSET, FORBIDDEN_OPS, ExportInfo, export_onnx
from edgekd.export.parity import parity

__all__ = ["DEFAULT_OPSET", "FORBIDDEN_OPS", "ExportInfo", "export_onnx", "parity"]
