"""The fashion-mnist data source: IDX files read by their definition, the fixed splits, the
transform, one-line errors, and --max-train's stratified subset (for every source)."""

from __future__ import annotations

import gzip
import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgekd.data import load_data
from edgekd.data.bundle import stratified_subset
from edgekd.data.fashion import MEAN, PACKAGE_DIR, STD, FashionDataset, fashion_bundle
from edgekd.errors import DataError

NEEDS_PACKAGE = pytest.mark.skipif(
    not (PACKAGE_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="the Debian package dataset-fashion-mnist is not installed (make system-deps "
    "installs it where apt-get is available)",
)


def idx_bytes(arr: np.ndarray) -> bytes:
    """The IDX format by its definition: 2 zero bytes, type 0x08 (ubyte), the number of
    dimensions, each dimension as a big-endian int32, then the data."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">i", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_set(folder: Path, n_train: int = 200, n_test: int = 30, gz: bool = True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, a in arrays.items():
        raw = idx_bytes(a)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_read_back_exactly(tmp_path, gz):
    arrays = write_set(tmp_path, gz=gz)
    b = load_data(f"fashion-mnist:{tmp_path}", (1, 28, 28), augment=False)
    # 200 train images, 20 per class: val takes 20 // 5 = 4 per class
    assert (len(b.train), len(b.val), len(b.test)) == (160, 40, 30)
    assert Counter(b.val.targets) == {c: 4 for c in range(10)}
    x, y = b.test[7]
    expected = (torch.tensor(arrays["t10k-images-idx3-ubyte"][7], dtype=torch.float32) / 255
                - MEAN) / STD  # fmt: skip
    assert y == 7
    assert torch.allclose(x[0], expected, atol=1e-6)
    assert b.report_split == "test" and b.report_set is b.test
    assert "held-out test set (30 images)" in b.accuracy_metric


def test_train_and_val_split_the_official_train_set(tmp_path):
    arrays = write_set(tmp_path)
    b = load_data(f"fashion-mnist:{tmp_path}", (1, 28, 28), augment=False)
    images = arrays["train-images-idx3-ubyte"]
    seen = [b.train.images[i].numpy() for i in range(len(b.train))]
    seen += [b.val.images[i].numpy() for i in range(len(b.val))]
    assert len(seen) == len(images)  # disjoint, and together all 200 (random images: unique)
    assert {a.tobytes() for a in seen} == {a.astype(np.uint8).tobytes() for a in images}
    again = load_data(f"fashion-mnist:{tmp_path}", (1, 28, 28), augment=False)
    assert torch.equal(again.val.images, b.val.images)  # the split is fixed


def test_resize_and_channels_follow_the_input_shape(tmp_path):
    ds = FashionDataset(torch.full((1, 28, 28), 51, dtype=torch.uint8), torch.tensor([3]),
                        (3, 32, 32))  # fmt: skip
    x, y = ds[0]
    # bilinear resizing keeps a constant image constant
    assert x.shape == (3, 32, 32) and y == 3
    assert torch.allclose(x, torch.full_like(x, (51 / 255 - MEAN) / STD), atol=1e-6)


def test_augmentation_is_a_shift_of_at_most_2_pixels_and_a_flip():
    img = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    ds = FashionDataset(img, torch.tensor([0]), (1, 28, 28), augment=True)
    padded = F.pad(img[0].float(), (2, 2, 2, 2))
    allowed = []
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            crop = padded[2 + dy : 30 + dy, 2 + dx : 30 + dx]
            allowed += [crop, crop.flip(1)]
    allowed = [(a / 255 - MEAN) / STD for a in allowed]
    torch.manual_seed(0)
    outs = [ds[0][0][0] for _ in range(200)]
    assert all(any(torch.allclose(o, a, atol=1e-6) for a in allowed) for o in outs)
    assert len({o.numpy().tobytes() for o in outs}) > 10  # it does move


@pytest.mark.parametrize(
    "damage, says",
    [
        ("truncate", "bad IDX header or length"),
        ("magic", "bad IDX header or length"),
        ("gzip", "unreadable or corrupt"),
        ("delete", "file not found"),
    ],
)
def test_a_damaged_file_is_one_line_naming_the_package(tmp_path, damage, says):
    write_set(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(f.read_bytes())
    if damage == "truncate":
        f.write_bytes(gzip.compress(raw[:-100]))
    elif damage == "magic":
        f.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + raw[4:]))
    elif damage == "gzip":
        f.write_bytes(b"not gzip at all")
    else:
        f.unlink()
    with pytest.raises(DataError) as e:
        load_data(f"fashion-mnist:{tmp_path}")
    line = e.value.one_line()
    assert says in line and "train-images-idx3-ubyte" in line
    assert "apt-get install dataset-fashion-mnist" in line and "\n" not in line


def test_a_missing_folder_says_how_to_install(tmp_path):
    with pytest.raises(DataError) as e:
        fashion_bundle(tmp_path / "nowhere")
    assert "Fashion-MNIST not found" in str(e.value)
    assert "apt-get install dataset-fashion-mnist" in str(e.value)


def test_stratified_subset_keeps_class_shares():
    ds = type("L", (), {"targets": [0] * 50 + [1] * 30 + [2] * 20, "__len__": lambda s: 100})()
    idx = stratified_subset(ds, 10, seed=0)
    assert Counter(ds.targets[i] for i in idx) == {0: 5, 1: 3, 2: 2}
    # largest remainder: 7 of (50, 30, 20) is (3.5, 2.1, 1.4) -> 3 + 2 + 1, one more to 0
    assert Counter(ds.targets[i] for i in stratified_subset(ds, 7, 0)) == {0: 4, 1: 2, 2: 1}
    assert stratified_subset(ds, 10, 0) == idx and stratified_subset(ds, 10, 1) != idx
    assert stratified_subset(ds, 500, 0) == list(range(100))


def test_max_train_limits_any_source_and_changes_its_fingerprint():
    full = load_data("digits")
    part = load_data("digits", max_train=100)
    assert len(part.train) == 100 and len(part.val) == len(full.val)
    shares = Counter(part.train.targets)
    full_shares = Counter(full.train.targets)
    assert all(abs(shares[c] - 100 * full_shares[c] / len(full.train)) < 1 for c in full_shares)
    assert len(part.calib_source) == 100  # calibration draws from the same images
    assert part.fingerprint != full.fingerprint
    with pytest.raises(DataError, match="--max-train"):
        load_data("digits", max_train=0)


@NEEDS_PACKAGE
def test_the_debian_package_gives_the_official_splits():
    b = load_data("fashion-mnist")
    assert (len(b.train), len(b.val), len(b.test)) == (55000, 5000, 10000)
    assert Counter(b.val.targets) == {c: 500 for c in range(10)}
    assert Counter(b.test.targets) == {c: 1000 for c in range(10)}  # t10k is balanced
    assert b.class_names[0] == "T-shirt/top" and b.class_names[9] == "Ankle boot"
    assert b.input_shape == (3, 32, 32) and b.train[0][0].shape == (3, 32, 32)


def test_compress_on_fashion_idx_files_reports_the_test_split(tmp_path):
    """The real CLI on a folder of IDX files: --max-train limits training, every accuracy is
    measured on the test images and labelled as such."""
    from tests.conftest import run_cli

    write_set(tmp_path / "fm", n_train=400, n_test=40)
    out = tmp_path / "run"
    proc = run_cli("compress", "timm:resnet10t", "--data", f"fashion-mnist:{tmp_path / 'fm'}",
                   "--max-train", "120", "--student", "lcnet_050", "--out", str(out),
                   "--epochs", "1", "--qat-epochs", "0", "--max-accuracy-drop", "100",
                   "--latency-iters", "10")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "120 train / 80 val / 40 test" in proc.stderr
    assert " test top-1 " in proc.stdout
    r = json.loads((out / "report.json").read_text())
    assert (r["data"]["train"], r["data"]["val"], r["data"]["test"]) == (120, 80, 40)
    assert r["data"]["accuracy_split"] == "test"
    assert r["data"]["accuracy_metric"].startswith("top-1 accuracy on the held-out test set")
    metrics = json.loads((out / "validate/metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["val_samples"] == 40
    # every accuracy is a count of the 40 test images
    accs = [metrics["teacher"]["accuracy"]] + [v["accuracy"] for v in metrics["student"].values()]
    for acc in accs:
        assert round(acc * 40 / 100, 6) == round(acc * 40 / 100)
    assert "fashion-mnist" in (out / "report.md").read_text()


def test_bad_max_train_and_a_missing_folder_are_one_line(tmp_path):
    from tests.cli.test_cli_runner import invoke, one_line

    one_line(invoke("compress", "timm:resnet10t", "--max-train", "0", "--out",
                    str(tmp_path / "r")), "max-train", "0")  # fmt: skip
    one_line(invoke("compress", "timm:resnet10t", "--data", "fashion-mnist:/nope", "--out",
                    str(tmp_path / "r2")),
             "Fashion-MNIST not found", "apt-get install dataset-fashion-mnist")  # fmt: skip
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()
