"""The built-in `digits` data: scikit-learn's 1797 real 8x8 handwritten digits, upsampled.

Images are upsampled (bilinear) to 32x32 by default, repeated to 3 channels and scaled to
[-1, 1]. The train/val split is fixed and stratified (20% val, seed 0), so every run and every
test sees the same 1437 / 360 images. Training images get a random shift of up to 2 pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from edgekd.data.bundle import DataBundle

SPLIT_SEED = 0
VAL_FRACTION = 0.2
CLASS_NAMES = tuple(str(i) for i in range(10))


class DigitsDataset(Dataset):
    """Tensors in memory; `max_shift` > 0 rolls each image by a random offset (training)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, max_shift: int = 0) -> None:
        self.images = images
        self.labels = labels
        self.max_shift = max_shift
        self.targets = labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.images[i]
        if self.max_shift:
            dx, dy = torch.randint(-self.max_shift, self.max_shift + 1, (2,)).tolist()
            x = torch.roll(x, shifts=(dy, dx), dims=(1, 2))
        return x, int(self.labels[i])


def digits_arrays(size: tuple[int, int] = (32, 32), channels: int = 3):
    """Images [N, C, H, W] in [-1, 1], labels [N], and the fixed train / val indices."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    x = (x.repeat(1, channels, 1, 1) - 0.5) / 0.5
    y = torch.tensor(d.target, dtype=torch.long)
    idx_train, idx_val = train_test_split(
        np.arange(len(y)), test_size=VAL_FRACTION, stratify=d.target, random_state=SPLIT_SEED
    )
    return x, y, idx_train, idx_val


def digits_bundle(
    input_shape: tuple[int, int, int] | None = None, augment: bool = True
) -> DataBundle:
    """The digits DataBundle at `input_shape` (default 3x32x32)."""
    c, h, w = input_shape or (3, 32, 32)
    x, y, itr, iva = digits_arrays((h, w), c)
    shift = max(1, round(2 * h / 32)) if augment else 0
    return DataBundle(
        name="digits",
        train=DigitsDataset(x[itr], y[itr], max_shift=shift),
        val=DigitsDataset(x[iva], y[iva]),
        calib_source=DigitsDataset(x[itr], y[itr]),
        num_classes=10,
        input_shape=(c, h, w),
        class_names=CLASS_NAMES,
        fingerprint=f"digits-v1-{c}x{h}x{w}-split{SPLIT_SEED}-shift{shift}",
        augmented=bool(shift),
    )
