"""Image folders in torchvision's ImageFolder layout: ROOT/train/<class>/*.png, ROOT/val/<class>/*.

Images are resized to the input shape and normalised with the ImageNet mean and std (the
convention of timm and torchvision teachers), or as `normalize` says (`parse_normalize`): a
teacher sees its images as it was trained on them, or its accuracy is a guess's. Training
images get a mild random resized crop (none with `augment=False`, which lets the trainer
cache the teacher's outputs).
An image that cannot be decoded stops the run with its path named (it is not skipped silently:
a silently shrunk validation set would make the accuracy figure lie).

Label-free data (the FAQD setting): images that are not sorted into class folders, either
ROOT/train/*.png or ROOT/*.png. Training then uses the teacher's outputs only. The number of
classes comes from the teacher. Validation uses ROOT/val/<class>/ when it exists (folder names
that are integers are class indices; otherwise sorted names are indices 0..K-1), flat
ROOT/val/*.png, or else a fixed 10% of the unlabeled images; without labels, val accuracy is
agreement with the teacher.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

from torch.utils.data import Dataset

from edgekd.data.bundle import DataBundle
from edgekd.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224
NORMALIZE_DEFAULT = "imagenet"


def parse_normalize(text: str | None, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel, of pixel values in [0, 1], from `--normalize`: "imagenet"
    (the default), "none" (mean 0, std 1: pixels stay in [0, 1]), "MEAN/STD" with one value
    for every channel ("0.286/0.353", Fashion-MNIST's) or one per channel
    ("0.5,0.5,0.5/0.25,0.25,0.25")."""
    text = (text or NORMALIZE_DEFAULT).strip().lower()
    if text == "imagenet":
        return IMAGENET_MEAN[:channels], IMAGENET_STD[:channels]
    if text == "none":
        return (0.0,) * channels, (1.0,) * channels
    fix = "use imagenet, none, or MEAN/STD such as 0.286/0.353 (one value or one per channel)"
    mean_s, sep, std_s = text.partition("/")
    try:
        mean = tuple(float(v) for v in mean_s.split(","))
        std = tuple(float(v) for v in std_s.split(","))
    except ValueError:
        raise DataError("bad --normalize", value=text, fix=fix) from None
    if not sep or {len(mean), len(std)} - {1, channels}:
        raise DataError(f"bad --normalize for {channels}-channel images", value=text, fix=fix)
    if not all(math.isfinite(v) for v in mean + std) or min(std) <= 0:
        raise DataError("--normalize needs finite means and positive stds", value=text, fix=fix)
    mean, std = (v * channels if len(v) == 1 else v for v in (mean, std))
    return mean, std


# torchvision's IMG_EXTENSIONS plus GIF (PIL reads its first frame)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
                  ".gif")  # fmt: skip


def is_image_name(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES and not Path(path).name.startswith(".")


def load_image(path: str | Path):
    """A PIL image, with 16- and 32-bit integer images scaled to 8 bits (PIL's own convert()
    clips them at 255, which turns a 16-bit PNG white) and float images clipped to [0, 1]."""
    import numpy as np
    from PIL import Image

    with open(path, "rb") as f:
        im = Image.open(f)
        im.load()
    if im.mode.startswith("I;16") or im.mode == "I":
        full = 65535.0 if im.mode.startswith("I;16") or np.asarray(im).max() > 255 else 255.0
        arr = np.asarray(im, dtype=np.float64) * (255.0 / full)
        im = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), mode="L")
    elif im.mode == "F":
        arr = np.clip(np.asarray(im, dtype=np.float64), 0.0, 1.0) * 255.0
        im = Image.fromarray(arr.round().astype(np.uint8), mode="L")
    return im


def _split_classes(split_dir: Path, *, strict: bool = False) -> list[str]:
    """Class folders holding images. strict (train/): a class folder without any image is an
    error, since dropping it would shift every later class index."""
    classes = []
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        files = [f for f in d.rglob("*") if f.is_file()]
        if any(is_image_name(f) for f in files):
            classes.append(d.name)
        elif strict and _has_image_classes(split_dir):
            kinds = sorted({f.suffix.lower() or f.name for f in files})
            what = f"{len(files)} other file(s)" + (f": {', '.join(kinds[:4])}" if kinds else "")
            raise DataError(
                "class folder holds no images",
                value=f"{d} ({what})",
                fix=f"add images ({', '.join(IMAGE_SUFFIXES)}) or remove the folder",
            )
    return classes


def _has_image_classes(split_dir: Path) -> bool:
    return any(
        is_image_name(f) for d in split_dir.iterdir() if d.is_dir() for f in d.rglob("*")
    )


def _skipped(*dirs: Path) -> tuple[str, ...]:
    """Files under the data folders that are not images (reported, never read)."""
    return tuple(
        str(f) for d in dirs if d.is_dir() for f in sorted(d.rglob("*"))
        if f.is_file() and not is_image_name(f)
    )  # fmt: skip


class CheckedImageFolder(Dataset):
    """ImageFolder whose decode failures become a DataError naming the file."""

    def __init__(self, root: Path, transform, class_to_idx: dict[str, int]) -> None:
        from torchvision.datasets import ImageFolder

        self._inner = ImageFolder(str(root), transform=transform, loader=load_image,
                                  is_valid_file=is_image_name, allow_empty=True)  # fmt: skip
        classes = self._inner.classes
        if self._inner.class_to_idx != {c: class_to_idx.get(c) for c in classes}:
            # val uses train's class indices, whatever classes it holds
            self._inner.samples = [(p, class_to_idx[classes[t]]) for p, t in self._inner.samples]
        self.samples = self._inner.samples
        self.targets = [t for _, t in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        path, target = self.samples[i]
        try:
            img = self._inner.loader(path)
        except Exception as e:  # PIL raises many types for a bad file
            raise DataError(
                "cannot decode image",
                value=path,
                fix=f"remove or replace the file ({type(e).__name__})",
            ) from None
        return self._inner.transform(img), target


class UnlabeledImages(Dataset):
    """Image files without labels (label -1 until a teacher labels them)."""

    def __init__(self, paths: list[Path], transform) -> None:
        self.paths, self.transform, self._load = paths, transform, load_image
        self.targets = [-1] * len(paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            img = self._load(str(self.paths[i]))
        except Exception as e:
            raise DataError(
                "cannot decode image",
                value=str(self.paths[i]),
                fix=f"remove or replace the file ({type(e).__name__})",
            ) from None
        return self.transform(img), -1


class Relabeled(Dataset):
    """A dataset whose labels are replaced (by the teacher's predictions)."""

    def __init__(self, ds: Dataset, labels: list[int]) -> None:
        self.ds, self.targets = ds, labels

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.ds[i][0], self.targets[i]


def _loose_images(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_file() and is_image_name(p))


def _transforms(input_shape, augment: bool, normalize: str | None = None):
    from torchvision import transforms as T

    c, h, w = input_shape or (3, DEFAULT_SIZE, DEFAULT_SIZE)
    if c not in (1, 3):
        raise DataError(
            "image folders give 1 or 3 channels", value=c, fix="use --input-shape 3,H,W"
        )
    to_c = (
        [T.Grayscale(num_output_channels=1)] if c == 1 else [T.Lambda(lambda im: im.convert("RGB"))]
    )
    norm = T.Normalize(*parse_normalize(normalize, c))
    eval_tf = T.Compose([*to_c, T.Resize((h, w)), T.ToTensor(), norm])
    crop = T.RandomResizedCrop((h, w), scale=(0.7, 1.0), ratio=(0.9, 1.1))
    train_tf = T.Compose([*to_c, crop, T.ToTensor(), norm]) if augment else eval_tf
    return (c, h, w), train_tf, eval_tf


def _fingerprint(root: Path, parts: list[tuple[str, int]]) -> str:
    fp = hashlib.sha256()
    for p, t in parts:
        fp.update(f"{Path(p).relative_to(root)}:{Path(p).stat().st_size}:{t};".encode())
    return fp.hexdigest()[:16]


def _norm_tag(normalize: str | None) -> str:
    """The fingerprint's part for a normalisation other than the default."""
    text = (normalize or NORMALIZE_DEFAULT).strip().lower()
    if text == NORMALIZE_DEFAULT:
        return ""
    return "-norm" + hashlib.sha256(text.encode()).hexdigest()[:8]


def label_free_bundle(root: Path, input_shape, augment: bool, normalize=None) -> DataBundle:
    """Unlabeled training images (see the module docstring); num_classes 0 until a teacher
    fills it in."""
    train_dir = root / "train" if (root / "train").is_dir() else root
    images = _loose_images(train_dir)
    shape, train_tf, eval_tf = _transforms(input_shape, augment, normalize)
    val_dir = root / "val"
    val_classes = _split_classes(val_dir) if val_dir.is_dir() else []
    if val_classes:
        if all(c.isdigit() for c in val_classes):
            class_to_idx = {c: int(c) for c in val_classes}
        else:
            class_to_idx = {c: i for i, c in enumerate(val_classes)}
        val: Dataset = CheckedImageFolder(val_dir, eval_tf, class_to_idx)
        val_labeled, val_parts = True, list(val.samples)  # type: ignore[attr-defined]
    else:
        held = _loose_images(val_dir) if val_dir.is_dir() else []
        if not held:  # hold out a fixed tenth of the unlabeled images
            n_val = max(1, len(images) // 10)
            held, images = images[-n_val:], images[:-n_val]
        val, val_labeled = UnlabeledImages(held, eval_tf), False
        val_parts = [(p, -1) for p in held]
    if len(images) < 2:
        raise DataError(
            "too few unlabeled training images", value=len(images), fix="add more images"
        )
    fp = _fingerprint(root, [(p, -1) for p in images] + val_parts)
    return DataBundle(
        name=str(root),
        train=UnlabeledImages(images, train_tf),
        val=val,
        calib_source=UnlabeledImages(images, eval_tf),
        num_classes=0,
        input_shape=shape,
        class_names=(),
        fingerprint=f"unlabeled-{'x'.join(map(str, shape))}-aug{int(augment)}-{fp}"
        + _norm_tag(normalize),
        labeled=False,
        augmented=augment,
        val_labeled=val_labeled,
        skipped=_skipped(root),
    )


def folder_bundle(
    root: str | Path,
    input_shape: tuple[int, int, int] | None = None,
    augment: bool = True,
    normalize: str | None = None,
) -> DataBundle:
    """A DataBundle from ROOT/train and ROOT/val (or label-free images, see above)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("data folder not found", value=str(root), fix="check the --data path")
    train_dir = root / "train" if (root / "train").is_dir() else root
    if not _split_classes(train_dir) and _loose_images(train_dir):
        return label_free_bundle(root, input_shape, augment, normalize)
    splits = {s: root / s for s in ("train", "val")}
    for split, d in splits.items():
        if not d.is_dir():
            raise DataError(
                f"data folder has no {split}/ subfolder",
                value=str(root),
                fix="lay images out as ROOT/train/<class>/*.png and ROOT/val/<class>/*.png",
            )
    train_classes = _split_classes(splits["train"], strict=True)
    if len(train_classes) == 0:
        raise DataError(
            "no images found in the train/ folder",
            value=str(splits["train"]),
            fix="put images in one subfolder per class (train/<class>/*.png)",
        )
    if len(train_classes) < 2:
        raise DataError(
            "train/ holds only one class; a classifier needs at least 2",
            value=train_classes[0],
            fix="add one subfolder per class under train/",
        )
    val_classes = _split_classes(splits["val"])
    if not val_classes:
        raise DataError(
            "no images found in the val/ folder", value=str(splits["val"]), fix="add val images"
        )
    unknown = sorted(set(val_classes) - set(train_classes))
    if unknown:
        raise DataError(
            "val/ has classes that train/ lacks",
            value=", ".join(unknown),
            fix="use the same class folder names in train/ and val/",
        )
    (c, h, w), train_tf, eval_tf = _transforms(input_shape, augment, normalize)
    class_to_idx = {name: i for i, name in enumerate(train_classes)}
    train = CheckedImageFolder(splits["train"], train_tf, class_to_idx)
    val = CheckedImageFolder(splits["val"], eval_tf, class_to_idx)
    fp = _fingerprint(root, train.samples + val.samples)
    return DataBundle(
        name=str(root),
        train=train,
        val=val,
        calib_source=CheckedImageFolder(splits["train"], eval_tf, class_to_idx),
        num_classes=len(train_classes),
        input_shape=(c, h, w),
        class_names=tuple(train_classes),
        fingerprint=f"folder-{c}x{h}x{w}-{fp}" + ("" if augment else "-noaug")
        + _norm_tag(normalize),
        augmented=augment,
        skipped=_skipped(splits["train"], splits["val"]),
    )
