"""DataBundle: what a run trains, calibrates and validates on, plus its shape and classes."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Subset


@dataclass(frozen=True)
class DataBundle:
    """Train / val / calib datasets of (image tensor [C,H,W], int label) pairs.

    `calib` holds training images under the *evaluation* transform (no augmentation), so
    calibration sees what the deployed model sees.
    """

    name: str
    train: Dataset
    val: Dataset
    calib_source: Dataset
    num_classes: int
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    fingerprint: str
    labeled: bool = True  # False: train images without labels (label-free distillation)
    augmented: bool = False  # True: the training transform is random (no teacher cache)
    val_labeled: bool = True  # False: val labels are the teacher's predictions (agreement)

    @property
    def accuracy_metric(self) -> str:
        """What the reported accuracy means for this data."""
        if self.val_labeled:
            return "top-1 accuracy on the labeled val set"
        return "top-1 agreement with the teacher (the val images have no labels)"

    def calibration_subset(self, n: int, seed: int) -> Dataset:
        """A fixed random subset of `n` training images (eval transform), drawn with `seed`."""
        total = len(self.calib_source)
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(total, generator=g)[: min(n, total)].tolist()
        return Subset(self.calib_source, idx)


def loader(ds: Dataset, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """A single-process DataLoader; shuffling is seeded so runs repeat on the CPU."""
    g = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=0)


def stack_inputs(ds: Dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of a (small) dataset as two tensors."""
    xs, ys = [], []
    for x, y in loader(ds, batch_size):
        xs.append(x)
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys)
