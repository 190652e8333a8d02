from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekd.data import load_data, stack_inputs
from edgekd.errors import DataError


def make_folder(root: Path, classes=("a", "b"), per_class=3, size=12) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
    return root


def test_folder_bundle_shapes_and_classes(tmp_path):
    root = make_folder(tmp_path / "imgs", classes=("cat", "dog", "owl"))
    b = load_data(str(root), (3, 24, 24))
    assert b.num_classes == 3 and b.class_names == ("cat", "dog", "owl")
    x, y = stack_inputs(b.val)
    assert x.shape == (9, 3, 24, 24)
    assert sorted(set(y.tolist())) == [0, 1, 2]


def test_val_with_fewer_classes_keeps_train_indices(tmp_path):
    root = make_folder(tmp_path / "imgs", classes=("a", "b", "c"))
    import shutil

    shutil.rmtree(root / "val" / "a")
    b = load_data(str(root), (3, 8, 8))
    _, y = stack_inputs(b.val)
    assert sorted(set(y.tolist())) == [1, 2]  # b -> 1, c -> 2 as in train


@pytest.mark.parametrize(
    "breakage,needle",
    [
        ("no_train", "no train/ subfolder"),
        ("empty_train", "no images found in the train/"),
        ("one_class", "only one class"),
        ("extra_val_class", "val/ has classes that train/ lacks"),
    ],
)
def test_bad_folders(tmp_path, breakage, needle):
    import shutil

    root = make_folder(tmp_path / "imgs")
    if breakage == "no_train":
        shutil.rmtree(root / "train")
    elif breakage == "empty_train":
        for p in (root / "train").rglob("*.png"):
            p.unlink()
    elif breakage == "one_class":
        shutil.rmtree(root / "train" / "b")
    elif breakage == "extra_val_class":
        make_folder(root, classes=("zzz",))
        shutil.rmtree(root / "train" / "zzz")
    with pytest.raises(DataError) as e:
        load_data(str(root))
    assert needle in e.value.one_line()


def test_undecodable_image_is_named(tmp_path):
    root = make_folder(tmp_path / "imgs")
    bad = root / "val" / "a" / "broken.png"
    bad.write_bytes(b"not a png")
    b = load_data(str(root), (3, 8, 8))
    with pytest.raises(DataError, match="broken.png"):
        stack_inputs(b.val)


def test_missing_data_source():
    with pytest.raises(DataError, match="data source not found"):
        load_data("./no/such/folder")
