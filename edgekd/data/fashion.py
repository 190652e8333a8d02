"""The built-in `fashion-mnist` data: Zalando's 70,000 28x28 grayscale clothing images.

    --data fashion-mnist        the Debian package dataset-fashion-mnist
                                (/usr/share/datasets/fashion-mnist)
    --data fashion-mnist:PATH   a folder holding the four IDX files (.gz or not), as
                                published at github.com/zalandoresearch/fashion-mnist

Splits: the official 60,000 training images minus a fixed stratified validation split of 5,000
(500 per class, seed 0) train the model and select its checkpoint; the official 10,000 test
images are held out for the reported accuracy, so the figure compares with the published ones
(ResNet18 0.949, a 2-layer convnet 0.916). Images are resized (bilinear) to the input shape
(default 3x32x32), repeated to its channels and normalised with the training set's mean and
std. Training images get a random shift of up to 2 pixels (zero padded) and a horizontal flip.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from edgekd.data.bundle import DataBundle
from edgekd.errors import DataError

PACKAGE = "dataset-fashion-mnist"
PACKAGE_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
MEAN, STD = 0.2860, 0.3530  # of the 60,000 training images, pixel values in [0, 1]
VAL_PER_CLASS = 500
SPLIT_SEED = 0
_IDX_MAGIC = {1: 0x0801, 3: 0x0803}  # unsigned byte data, 1 (labels) or 3 (images) dims


def _install_hint(where: Path) -> str:
    return (
        f"install the Debian package {PACKAGE} (apt-get install {PACKAGE}), or pass "
        f"fashion-mnist:PATH naming a folder with {', '.join(FILES.values())} (.gz or not)"
        + ("" if where == PACKAGE_DIR else f"; looked in {where}")
    )


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    raise DataError(
        "Fashion-MNIST file not found", value=str(folder / (stem + ".gz")),
        fix=_install_hint(folder),
    )  # fmt: skip


def read_idx(path: Path, dims: int) -> np.ndarray:
    """An IDX file of unsigned bytes (gzip or plain) as an array; any damage is a DataError."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(
            "Fashion-MNIST file is unreadable or corrupt", value=str(path),
            fix=f"reinstall it ({type(e).__name__}: {e}); " + _install_hint(path.parent),
        ) from None  # fmt: skip
    header = 4 + 4 * dims
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if magic != _IDX_MAGIC[dims] or len(raw) != header + int(np.prod(shape, dtype=np.int64)):
        raise DataError(
            "Fashion-MNIST file is corrupt (bad IDX header or length)", value=str(path),
            fix=f"expected magic {_IDX_MAGIC[dims]:#06x} and {dims} dims; reinstall it: "
            + _install_hint(path.parent),
        )  # fmt: skip
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def load_split(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 28, 28] and int64 labels [N] of "train" or "test", checked."""
    images = read_idx(_find(folder, FILES[f"{split}_images"]), 3)
    labels = read_idx(_find(folder, FILES[f"{split}_labels"]), 1)
    if len(images) != len(labels) or len(images) == 0:
        raise DataError(
            f"Fashion-MNIST {split} images and labels disagree",
            value=f"{len(images)} images vs {len(labels)} labels in {folder}",
            fix="reinstall the files: " + _install_hint(folder),
        )
    if labels.max() >= len(CLASS_NAMES):
        raise DataError(
            f"Fashion-MNIST {split} labels out of range", value=int(labels.max()),
            fix=f"labels lie in 0..{len(CLASS_NAMES) - 1}; reinstall: " + _install_hint(folder),
        )  # fmt: skip
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def stratified_val(labels: torch.Tensor, per_class: int, seed: int) -> tuple[list, list]:
    """Train and val indices: `per_class` images of each class to val, drawn with `seed`."""
    g = torch.Generator().manual_seed(seed)
    val: list[int] = []
    for c in range(int(labels.max()) + 1):
        idx = torch.nonzero(labels == c).flatten()
        take = min(per_class, len(idx) // 5)  # a small custom folder keeps 80% for training
        val += idx[torch.randperm(len(idx), generator=g)[:take]].tolist()
    val.sort()
    held = set(val)
    return [i for i in range(len(labels)) if i not in held], val


class FashionDataset(Dataset):
    """uint8 28x28 images in memory, resized and normalised per item; `augment` adds a
    random shift of up to 2 pixels (zero padded) and a horizontal flip."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, shape: tuple[int, int, int],
        augment: bool = False,
    ) -> None:  # fmt: skip
        self.images, self.labels, self.shape, self.augment = images, labels, shape, augment
        self.targets = labels.tolist()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.images[i]
        if self.augment:
            dx, dy = torch.randint(-2, 3, (2,)).tolist()
            x = F.pad(x, (2, 2, 2, 2))[2 + dy : 30 + dy, 2 + dx : 30 + dx]
            if torch.rand(()) < 0.5:
                x = x.flip(1)
        c, h, w = self.shape
        x = x.float().div_(255.0)[None, None]
        if (h, w) != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        x = ((x[0] - MEAN) / STD).expand(c, h, w).contiguous()
        return x, int(self.labels[i])


def parse_spec(spec: str) -> Path | None:
    """The folder of a `fashion-mnist[:PATH]` spec (the package's for the bare name), or None
    when `spec` names another source."""
    if spec == "fashion-mnist":
        return PACKAGE_DIR
    if spec.startswith("fashion-mnist:"):
        return Path(spec.partition(":")[2]).expanduser()
    return None


def fashion_bundle(
    folder: Path = PACKAGE_DIR,
    input_shape: tuple[int, int, int] | None = None,
    augment: bool = True,
) -> DataBundle:
    """The Fashion-MNIST DataBundle: train / val from the official train set, test = t10k."""
    if not folder.is_dir():
        raise DataError("Fashion-MNIST not found", value=str(folder), fix=_install_hint(folder))
    shape = tuple(input_shape or (3, 32, 32))
    x_tr, y_tr = load_split(folder, "train")
    x_te, y_te = load_split(folder, "test")
    itr, iva = stratified_val(y_tr, VAL_PER_CLASS, SPLIT_SEED)
    digest = hashlib.sha256()
    for t in (y_tr, y_te, x_tr[::97], x_te[::97]):  # labels in full, a sample of pixels
        digest.update(t.numpy().tobytes())
    c, h, w = shape
    return DataBundle(
        name="fashion-mnist",
        train=FashionDataset(x_tr[itr], y_tr[itr], shape, augment=augment),
        val=FashionDataset(x_tr[iva], y_tr[iva], shape),
        calib_source=FashionDataset(x_tr[itr], y_tr[itr], shape),
        num_classes=len(CLASS_NAMES),
        input_shape=shape,  # type: ignore[arg-type]
        class_names=CLASS_NAMES,
        fingerprint=f"fashion-mnist-v1-{digest.hexdigest()[:12]}-{c}x{h}x{w}-aug{int(augment)}",
        augmented=augment,
        test=FashionDataset(x_te, y_te, shape),
    )
