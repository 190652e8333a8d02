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


def test_16_bit_images_are_scaled_not_clipped_and_gifs_are_read(tmp_path):
    from edgekd.data.folder import IMAGENET_MEAN, IMAGENET_STD

    root = make_folder(tmp_path / "imgs", classes=("a", "b"), per_class=1, size=8)
    for f in (root / "val").rglob("*.png"):
        f.unlink()
    # a 16-bit grayscale PNG of value 1000 (of 65535): 1000 * 255 / 65535 = 3.89 -> 4 of 255
    Image.fromarray(np.full((8, 8), 1000, dtype=np.uint16)).save(root / "val" / "a" / "deep.png")
    Image.fromarray(np.full((8, 8, 3), 200, dtype=np.uint8)).save(root / "val" / "b" / "x.gif")
    (root / "val" / "b" / "notes.txt").write_text("not an image")
    b = load_data(str(root), (3, 8, 8), augment=False)
    assert len(b.val) == 2  # the GIF counts
    assert [Path(p).name for p in b.skipped] == ["notes.txt"]
    x, y = stack_inputs(b.val)
    want16 = [(4 / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    got16 = x[y.tolist().index(0)].mean(dim=(1, 2)).tolist()
    assert np.allclose(got16, want16, atol=1e-5), (got16, want16)  # clipped would be 255/255
    wantgif = [(200 / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
    assert np.allclose(x[y.tolist().index(1)].mean(dim=(1, 2)).tolist(), wantgif, atol=1e-5)


def test_a_train_class_folder_without_images_is_one_line(tmp_path):
    root = make_folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=1, size=8)
    for f in (root / "train" / "b").iterdir():
        f.unlink()
    (root / "train" / "b" / "readme.md").write_text("x")
    with pytest.raises(DataError, match=r"class folder holds no images.*1 other file\(s\): \.md"):
        load_data(str(root), (3, 8, 8))


def test_normalize_presets_and_values():
    from edgekd.data.folder import IMAGENET_MEAN, IMAGENET_STD, parse_normalize
    assert parse_normalize(None, 3) == (IMAGENET_MEAN, IMAGENET_STD)
    assert parse_normalize("none", 1) == ((0.0,), (1.0,))
    assert parse_normalize("0.286/0.353", 3) == ((0.286,) * 3, (0.353,) * 3)
    assert parse_normalize("0.5,0.4,0.3/1,2,3", 3) == ((0.5, 0.4, 0.3), (1.0, 2.0, 3.0))
    for bad in ("0.5", "a/b", "0.5,0.5/1", "0.5/0", "nan/1"):
        with pytest.raises(DataError):
            parse_normalize(bad, 3)


def test_normalize_changes_the_pixels_and_the_fingerprint(tmp_path):
    root = make_folder(tmp_path / "imgs")
    plain = load_data(str(root), (1, 8, 8))
    mine = load_data(str(root), (1, 8, 8), normalize="none")
    x, _ = plain.val[0]
    y, _ = mine.val[0]
    # ImageNet's first channel: (p - 0.485) / 0.229; "none": p itself, in [0, 1]
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert np.allclose(x.numpy(), (y.numpy() - 0.485) / 0.229, atol=1e-5)
    assert plain.fingerprint != mine.fingerprint
