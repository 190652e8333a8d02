"""Parity of an exported ONNX model with the torch model it came from, on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgekd.backends import onnxruntime as ort_backend


def parity(
    onnx_path: str | Path, torch_logits: torch.Tensor, ds, threads: int = 1, progress=None
) -> dict:
    """Top-1 agreement (percent) and logit differences between ONNX Runtime and torch.
    `progress(done, total)`: after each batch ONNX Runtime ran."""
    ort_logits = ort_backend.predict(onnx_path, ds, threads=threads, progress=progress)
    ref = torch_logits.detach().numpy()
    diff = np.abs(ort_logits - ref)
    return {
        "top1_agreement": float((ort_logits.argmax(1) == ref.argmax(1)).mean() * 100),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "samples": int(len(ref)),
    }
