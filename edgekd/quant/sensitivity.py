"""Per-layer quantization sensitivity, and mixed precision that keeps the worst layers in float.

Sensitivity of a layer = KL(p_fp32 || p_q) of the model's output distribution on the
calibration images when *only that layer* is quantized (its input and weight quantizers on,
every other quantizer off), batch mean. Higher = quantizing it alone hurts more.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.data import loader


def quantized_layers(model: nn.Module) -> dict[str, list[nn.Module]]:
    """Module name -> its enabled TensorQuantizers (input and weight). In ONNX Runtime's graph
    (`edgekd.quant.ort_qat`) a layer is a Conv/Gemm, named after its torch module, and switching
    it off runs its weights in float."""
    from edgekd.quant.ort_qat import OrtQdq

    if isinstance(model, OrtQdq):
        return {m.source: [m] for m in model.layers.values() if m.quantized}
    out: dict[str, list[nn.Module]] = {}
    for name, m in model.named_modules():
        qs = [
            getattr(m, a)
            for a in ("input_quantizer", "weight_quantizer")
            if type(getattr(m, a, None)).__name__ == "TensorQuantizer"
        ]
        qs = [q for q in qs if q.is_enabled]
        if qs:
            out[name] = qs
    return out


@torch.no_grad()
def _logits(model: nn.Module, ds, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    model.eval()
    return torch.cat([model(x.to(device)).float().cpu() for x, _ in loader(ds, batch_size)])


def layer_sensitivity(
    model: nn.Module, calib_ds, batch_size: int = 64, progress=None
) -> list[tuple[str, float]]:
    """(layer, KL) for every quantized layer, most sensitive first. Leaves `model` as it was.
    `progress(done, total, layer)`: called after each layer."""
    layers = quantized_layers(model)
    everything = [q for qs in layers.values() for q in qs]
    for q in everything:
        q.disable()
    try:
        ref = F.log_softmax(_logits(model, calib_ds, batch_size), dim=1)
        scores = []
        for name, qs in layers.items():
            for q in qs:
                q.enable()
            log_q = F.log_softmax(_logits(model, calib_ds, batch_size), dim=1)
            kl = (ref.exp() * (ref - log_q)).sum(1).mean().item()
            scores.append((name, max(kl, 0.0)))
            if progress is not None:
                progress(len(scores), len(layers), name)
            for q in qs:
                q.disable()
    finally:
        for q in everything:
            q.enable()
    return sorted(scores, key=lambda s: s[1], reverse=True)


def keep_in_float(model: nn.Module, names: list[str]) -> None:
    """Disable the quantizers of the named layers (they run in higher precision)."""
    layers = quantized_layers(model)
    for name in names:
        for q in layers.get(name, []):
            q.disable()


def mixed_precision(
    model: nn.Module,
    ranking: list[tuple[str, float]],
    accuracy: Callable[[nn.Module], float],
    target_accuracy: float,
    max_float_layers: int | None = None,
) -> tuple[list[str], float]:
    """Keep the 1, 2, 4, ... most sensitive layers in float until `accuracy(model)` reaches
    `target_accuracy` (or `max_float_layers` is hit). Returns the float layers and the accuracy;
    the model keeps that configuration. When no step reaches the target, the most accurate
    configuration tried is kept (the fewest float layers among equals): more float layers
    that score lower buy nothing."""
    limit = len(ranking) if max_float_layers is None else min(max_float_layers, len(ranking))
    layers = quantized_layers(model)  # before any goes to float: what to switch back on
    acc = accuracy(model)
    k, kept = 1, []
    best = (acc, kept)
    while acc < target_accuracy and k <= limit:
        kept = [name for name, _ in ranking[:k]]
        keep_in_float(model, kept)
        acc = accuracy(model)
        if acc > best[0]:
            best = (acc, kept)
        k *= 2
    if acc < target_accuracy and best[1] != kept:  # back to the most accurate one tried
        for name in set(kept) - set(best[1]):
            for q in layers.get(name, []):
                q.enable()
        acc, kept = best
    return kept, acc
