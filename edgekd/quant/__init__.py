"""Quantization through NVIDIA Model Optimizer: INT8 fake-quant, calibration, QAT state."""

from edgekd.quant.modelopt_int8 import (
    CALIB_METHODS,
    count_quantizers,
    quantize_int8,
    quantizer_state,
    restore_quantized,
    save_quantized,
)

__all__ = [
    "CALIB_METHODS",
    "count_quantizers",
    "quantize_int8",
    "quantizer_state",
    "restore_quantized",
    "save_quantized",
]
