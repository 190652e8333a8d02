"""What a model returns, read one way everywhere (a base module: every package may import it)."""

from __future__ import annotations


def first_output(out):
    """The logits of a model's output: the first element where the model returns a tuple or a
    list (timm's distilled ViTs, models that also return features), else the output itself."""
    return out[0] if isinstance(out, (tuple, list)) else out
