"""Sentences both report.md and report.html use."""

from __future__ import annotations


def data_line(d: dict) -> str:
    """One line naming the data, its splits and what top-1 means."""
    split = f"{d['train']} train / {d['val']} val"
    if d.get("test"):
        split += f" / {d['test']} test"
    return (f"Data `{d['name']}`: {split} images, {d['num_classes']} classes, input "
            f"{'x'.join(map(str, d['input_shape']))}; top-1 is "
            f"{d.get('accuracy_metric', 'top-1 accuracy on the labeled val set')}.")  # fmt: skip
