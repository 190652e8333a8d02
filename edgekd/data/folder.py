"""Image folders in torchvision's ImageFolder layout: ROOT/train/<class>/*.png, ROOT/val/<class>/*.

Images are resized to the input shape and normalised with the ImageNet mean and std (the
convention of timm and torchvision teachers). Training images get a mild random resized crop.
An image that cannot be decoded stops the run with its path named (it is not skipped silently:
a silently shrunk validation set would make the accuracy figure lie).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from torch.utils.data import Dataset

from edgekd.data.bundle import DataBundle
from edgekd.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224


def _split_classes(split_dir: Path) -> list[str]:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    classes = []
    for d in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if any(f.suffix.lower() in IMG_EXTENSIONS for f in d.rglob("*") if f.is_file()):
            classes.append(d.name)
    return classes


class CheckedImageFolder(Dataset):
    """ImageFolder whose decode failures become a DataError naming the file."""

    def __init__(self, root: Path, transform, class_to_idx: dict[str, int]) -> None:
        from torchvision.datasets import ImageFolder

        self._inner = ImageFolder(str(root), transform=transform)
        if self._inner.class_to_idx != {c: class_to_idx[c] for c in self._inner.classes}:
            # val uses train's class indices, whatever classes it holds
            self._inner.samples = [
                (p, class_to_idx[self._inner.classes[t]]) for p, t in self._inner.samples
            ]
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


def folder_bundle(root: str | Path, input_shape: tuple[int, int, int] | None = None) -> DataBundle:
    """A DataBundle from ROOT/train and ROOT/val."""
    from torchvision import transforms as T

    root = Path(root)
    if not root.is_dir():
        raise DataError("data folder not found", value=str(root), fix="check the --data path")
    splits = {s: root / s for s in ("train", "val")}
    for split, d in splits.items():
        if not d.is_dir():
            raise DataError(
                f"data folder has no {split}/ subfolder",
                value=str(root),
                fix="lay images out as ROOT/train/<class>/*.png and ROOT/val/<class>/*.png",
            )
    train_classes = _split_classes(splits["train"])
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
    c, h, w = input_shape or (3, DEFAULT_SIZE, DEFAULT_SIZE)
    if c not in (1, 3):
        raise DataError(
            "image folders give 1 or 3 channels", value=c, fix="use --input-shape 3,H,W"
        )
    to_c = (
        [T.Grayscale(num_output_channels=1)] if c == 1 else [T.Lambda(lambda im: im.convert("RGB"))]
    )
    norm = T.Normalize(IMAGENET_MEAN[:c], IMAGENET_STD[:c])
    eval_tf = T.Compose([*to_c, T.Resize((h, w)), T.ToTensor(), norm])
    train_tf = T.Compose(
        [*to_c, T.RandomResizedCrop((h, w), scale=(0.7, 1.0), ratio=(0.9, 1.1)), T.ToTensor(), norm]
    )
    class_to_idx = {name: i for i, name in enumerate(train_classes)}
    train = CheckedImageFolder(splits["train"], train_tf, class_to_idx)
    fp = hashlib.sha256()
    for p, t in train.samples:
        fp.update(f"{Path(p).relative_to(root)}:{Path(p).stat().st_size}:{t};".encode())
    val = CheckedImageFolder(splits["val"], eval_tf, class_to_idx)
    for p, t in val.samples:
        fp.update(f"{Path(p).relative_to(root)}:{Path(p).stat().st_size}:{t};".encode())
    return DataBundle(
        name=str(root),
        train=train,
        val=val,
        calib_source=CheckedImageFolder(splits["train"], eval_tf, class_to_idx),
        num_classes=len(train_classes),
        input_shape=(c, h, w),
        class_names=tuple(train_classes),
        fingerprint=f"folder-{c}x{h}x{w}-{fp.hexdigest()[:16]}",
        augmented=True,
    )
