"""INT8 fake quantization through NVIDIA Model Optimizer (`modelopt.torch.quantization`).

`INT8_DEFAULT_CFG`: weights symmetric per-channel on axis 0, activations symmetric per-tensor,
zero point 0 — the explicit-quantization form TensorRT consumes. Calibration sets the ranges
(`max` here); QAT then trains through the fake-quant nodes. The quantizer state (modelopt's
`modelopt_state`) is saved beside the weights so a checkpoint can be restored on a fresh model.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any

import torch
from torch import nn

from edgekd.data import loader
from edgekd.errors import ConfigError
from edgekd.quant.ort_qat import OrtQdq, is_ort_state, ranges_problems
from edgekd.quant.residual import attach, attached, drop_redundant, plan_residuals

CALIB_METHODS = ("max", "entropy", "percentile")


def _mtq():
    # modelopt imports torch's cpp_extension, which logs a warning on every CUDA-less machine
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import modelopt.torch.quantization as mtq
    _register_timm_linear()
    _register_residual_tap()
    return mtq


def _register_residual_tap() -> None:
    """A residual tap is quantized like a pooling layer: an INT8 input quantizer in front."""
    from modelopt.torch.quantization.nn import QuantModuleRegistry
    from modelopt.torch.quantization.nn.modules.quant_module import QuantInputBase

    from edgekd.quant.residual import ResidualTap

    if ResidualTap not in QuantModuleRegistry:
        QuantModuleRegistry.register({ResidualTap: "edgekd.ResidualTap"})(QuantInputBase)


def _register_timm_linear() -> None:
    """Model Optimizer converts modules by exact class, so timm's `Linear` (an nn.Linear
    subclass that MobileNetV3, LCNet and GhostNet use for their classifier) stayed
    unquantized: a float Gemm at the end of the INT8 engine. Quantize it as nn.Linear."""
    try:
        from timm.layers import Linear
    except ImportError:
        return
    from modelopt.torch.quantization.nn import QuantModuleRegistry
    from modelopt.torch.quantization.nn.modules.quant_linear import _QuantLinear

    if Linear not in QuantModuleRegistry:
        QuantModuleRegistry.register({Linear: "timm.layers.Linear"})(_QuantLinear)


def _int8_config(method: str) -> dict:
    """INT8_DEFAULT_CFG; for entropy / percentile the activation quantizers collect a
    histogram instead of a running max, and calibration is finished by hand below."""
    import copy

    mtq = _mtq()
    cfg = copy.deepcopy(mtq.INT8_DEFAULT_CFG)
    if method == "max":
        # calibration runs on one process; under torchrun (rank 0 alone) an amax all-reduce
        # would wait forever for ranks that are not calibrating
        cfg["algorithm"] = {"method": "max", "distributed_sync": False}
        return cfg
    for entry in cfg["quant_cfg"]:
        if entry.get("quantizer_name") == "*input_quantizer":
            entry["cfg"] = {**entry["cfg"], "calibrator": "histogram"}
    cfg["algorithm"] = None
    return cfg


def quantize_int8(
    model: nn.Module,
    calib_ds,
    batch_size: int = 64,
    method: str = "max",
    percentile: float = 99.99,
    progress=None,
    residual: bool = True,
) -> nn.Module:
    """Insert INT8 fake-quant nodes into `model` and calibrate them on `calib_ds` (in place).

    Weights are always calibrated by their per-channel max. Activations by `method`:
    `max` (largest |x| seen), `entropy` (the range minimising the KL divergence between the
    float and quantized histograms, TensorRT's classic choice) or `percentile` (the
    `percentile`-th percentile of |x|, which clips rare outliers). `progress(done, total)`:
    called after each calibration batch. `residual`: quantize the residual input of each Add
    TensorRT can fuse into a convolution (`edgekd.quant.residual`); the plan is kept as
    `model.residual_plan`.
    """
    if method not in CALIB_METHODS:
        raise ConfigError("unknown calibration method", value=repr(method), valid=CALIB_METHODS)
    if not 50 < percentile <= 100:
        raise ConfigError("calibration percentile must lie in (50, 100]", value=percentile)
    mtq = _mtq()

    device = next(model.parameters()).device

    def forward_loop(m: nn.Module) -> None:
        batches = loader(calib_ds, batch_size)
        with torch.no_grad():
            for i, (x, _) in enumerate(batches):
                m(x.to(device))
                if progress is not None:
                    progress(i + 1, len(batches))

    model.eval()
    plan = None
    if residual:
        example = calib_ds[0][0].unsqueeze(0).to(device)
        plan = plan_residuals(model, example)
        attach(model, plan.modules)
    cfg = _int8_config(method)
    with contextlib.redirect_stdout(io.StringIO()):  # modelopt prints a line per call
        if method == "max":
            model = mtq.quantize(model, cfg, forward_loop)
            return _with_plan(model, plan)
        model = mtq.quantize(model, cfg, None)
    from modelopt.torch.quantization.model_calib import enable_stats_collection

    enable_stats_collection(model)
    forward_loop(model)
    for m in model.modules():
        if type(m).__name__ != "TensorQuantizer" or m._disabled:
            continue
        if type(getattr(m, "_calibrator", None)).__name__ == "HistogramCalibrator":
            if method == "entropy":
                m.load_calib_amax("entropy")
            else:
                m.load_calib_amax("percentile", percentile=percentile)
        else:
            m.load_calib_amax()
        m.enable_quant()
        m.disable_calib()
    return _with_plan(model, plan)


def _with_plan(model: nn.Module, plan) -> nn.Module:
    if plan is not None:
        plan.dropped = drop_redundant(model, plan)
        model.residual_plan = plan
    return model


def bad_ranges(model: nn.Module) -> dict[str, str]:
    """Quantizers whose calibrated range is zero or not finite, by module name.

    A zero range quantizes everything to 0 (a dead channel or a layer the calibration data never
    excites); an infinite or NaN range means the calibration saw non-finite activations.
    """
    if isinstance(model, OrtQdq):
        return ranges_problems(model)
    out = {}
    for name, m in model.named_modules():
        if type(m).__name__ != "TensorQuantizer" or not getattr(m, "is_enabled", False):
            continue
        amax = getattr(m, "amax", None)
        if amax is None:
            continue
        amax = torch.as_tensor(amax).float()
        if not torch.isfinite(amax).all():
            out[name] = "not finite"
        elif (amax == 0).any():
            zeros = int((amax == 0).sum())
            out[name] = (
                f"zero in {zeros} of {amax.numel()} channel(s)" if amax.numel() > 1 else "zero"
            )
    return out


def quantizer_state(model: nn.Module) -> dict[str, Any]:
    """modelopt's state of a quantized model (loads with torch.load(weights_only=True))."""
    if isinstance(model, OrtQdq):
        return model.extra_state()
    import modelopt.torch.opt as mto

    return mto.modelopt_state(model)


def restore_quantized(model: nn.Module, state: dict[str, Any], weights: dict) -> nn.Module:
    """Rebuild a fake-quantized model from a fresh float `model`, its modelopt state and weights.
    A state saved from ONNX Runtime's graph (`edgekd.quant.ort_qat`) rebuilds that graph;
    `model` is not used then."""
    if is_ort_state(state):
        return OrtQdq.from_state(state, weights)
    _mtq()
    import modelopt.torch.opt as mto

    attach(model, attached(state))  # the residual quantizers, before their state is restored
    with contextlib.redirect_stdout(io.StringIO()):
        model = mto.restore_from_modelopt_state(model, state)
    model.load_state_dict(weights)
    return model.eval()


def save_quantized(path, model: nn.Module) -> None:
    """A fake-quantized student as one file: its weights and Model Optimizer's quantizer
    state (atomically written; `restore_quantized` reads it back)."""
    from edgekd._io import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "extra": quantizer_state(model)}, tmp)


def count_quantizers(model: nn.Module) -> int:
    """Enabled TensorQuantizer modules in `model` (quantized layers and activation quantizers
    of ONNX Runtime's graph)."""
    if isinstance(model, OrtQdq):
        return sum(q.enabled for q in model.quants.values()) + sum(
            m.quantized for m in model.layers.values()
        )
    return sum(
        1
        for m in model.modules()
        if type(m).__name__ == "TensorQuantizer" and getattr(m, "is_enabled", False)
    )
