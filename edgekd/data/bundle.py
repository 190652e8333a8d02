"""DataBundle: what a run trains, calibrates and validates on, plus its shape and classes."""

from __future__ import annotations

import dataclasses
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
    test: Dataset | None = None  # a held-out test set (never used to select a checkpoint)
    skipped: tuple[str, ...] = ()  # files in the data folders that are not images, not used

    @property
    def report_split(self) -> str:
        """The split the reported accuracy is measured on: "test" when there is one."""
        return "test" if self.test is not None else "val"

    @property
    def report_set(self) -> Dataset:
        """The dataset of `report_split`: artifacts are validated on it."""
        return self.test if self.test is not None else self.val

    @property
    def accuracy_metric(self) -> str:
        """What the reported accuracy means for this data."""
        if self.test is not None:
            return f"top-1 accuracy on the held-out test set ({len(self.test)} images)"
        if self.val_labeled:
            return "top-1 accuracy on the labeled val set"
        return "top-1 agreement with the teacher (the val images have no labels)"

    def calibration_subset(self, n: int, seed: int) -> Dataset:
        """A fixed random subset of `n` training images (eval transform), drawn with `seed`."""
        total = len(self.calib_source)
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(total, generator=g)[: min(n, total)].tolist()
        return Subset(self.calib_source, idx)


def stratified_subset(ds: Dataset, n: int, seed: int) -> list[int]:
    """Indices of `n` items of `ds`, each class in proportion to its share (largest remainder),
    drawn with `seed`; the order is ascending. Items labelled -1 (unlabeled) form one group."""
    targets = [int(t) for t in getattr(ds, "targets", [-1] * len(ds))]
    if n >= len(targets):
        return list(range(len(targets)))
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(targets):
        groups.setdefault(t, []).append(i)
    quota = {c: n * len(idx) / len(targets) for c, idx in groups.items()}
    take = {c: int(q) for c, q in quota.items()}
    by_remainder = sorted(groups, key=lambda c: (take[c] - quota[c], c))
    for c in by_remainder[: n - sum(take.values())]:
        take[c] += 1
    g = torch.Generator().manual_seed(seed)
    chosen: list[int] = []
    for c in sorted(groups):
        idx = groups[c]
        chosen += [idx[j] for j in torch.randperm(len(idx), generator=g)[: take[c]].tolist()]
    return sorted(chosen)


class TrainSubset(Subset):
    """A Subset that keeps `targets` (the trainer and the stratified tools read them)."""

    def __init__(self, ds: Dataset, indices: list[int]) -> None:
        super().__init__(ds, indices)
        all_targets = getattr(ds, "targets", None)
        self.targets = [all_targets[i] for i in indices] if all_targets is not None else None


def limit_train(bundle: DataBundle, max_train: int | None, seed: int = 0) -> DataBundle:
    """`bundle` with at most `max_train` training images, stratified by class and seeded; the
    calibration images are the same subset (under the eval transform). Val and test stay."""
    if not max_train or max_train >= len(bundle.train):
        return bundle
    idx = stratified_subset(bundle.train, max_train, seed)
    calib = bundle.calib_source
    if len(calib) == len(bundle.train):  # the same images under the eval transform
        calib = TrainSubset(calib, idx)
    return dataclasses.replace(
        bundle,
        train=TrainSubset(bundle.train, idx),
        calib_source=calib,
        fingerprint=f"{bundle.fingerprint}-max{max_train}s{seed}",
    )


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
