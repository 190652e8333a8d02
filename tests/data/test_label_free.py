"""Label-free image folders: layouts, held-out val, labeled val/ with index folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekd.data import load_data, stack_inputs
from edgekd.errors import DataError


def flat_images(d: Path, n: int, size: int = 16, seed: int = 0) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(d / f"img{i:03d}.png")
    return d


def test_flat_folder_holds_out_a_fixed_tenth(tmp_path):
    root = flat_images(tmp_path / "imgs", 30)
    b = load_data(str(root), (3, 16, 16), augment=False)
    assert not b.labeled and not b.val_labeled and not b.augmented
    assert (len(b.train), len(b.val)) == (27, 3)
    assert "agreement with the teacher" in b.accuracy_metric
    _, y = stack_inputs(b.val)
    assert y.tolist() == [-1, -1, -1]
    again = load_data(str(root), (3, 16, 16), augment=False)
    assert again.fingerprint == b.fingerprint


def test_train_flat_with_labeled_index_val(tmp_path):
    flat_images(tmp_path / "d/train", 10)
    flat_images(tmp_path / "d/val/3", 2, seed=1)
    flat_images(tmp_path / "d/val/7", 2, seed=2)
    b = load_data(str(tmp_path / "d"), (3, 16, 16))
    assert not b.labeled and b.val_labeled and b.augmented
    assert len(b.train) == 10
    _, y = stack_inputs(b.val)
    assert sorted(y.tolist()) == [3, 3, 7, 7]  # integer folder names are class indices


def test_flat_val_folder_is_used_whole(tmp_path):
    flat_images(tmp_path / "d/train", 10)
    flat_images(tmp_path / "d/val", 4, seed=1)
    b = load_data(str(tmp_path / "d"), (3, 16, 16))
    assert (len(b.train), len(b.val)) == (10, 4) and not b.val_labeled


def test_too_few_images_is_one_clear_error(tmp_path):
    root = flat_images(tmp_path / "imgs", 1)
    with pytest.raises(DataError, match="too few unlabeled training images"):
        load_data(str(root), (3, 16, 16))
