"""ONNX export (float and Q/DQ) and the TensorRT-compatibility lint."""

from edgekd.export.onnx_export import DEFAULT_OPSET, FORBIDDEN_OPS, ExportInfo, export_onnx

__all__ = ["DEFAULT_OPSET", "FORBIDDEN_OPS", "ExportInfo", "export_onnx"]
