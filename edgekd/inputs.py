"""What a run trains on: the teacher and the data, loaded and checked once.

`load_inputs(InputSpec)` is the one way in, for the CLI (`edgekd search`), the compress
pipeline and every DDP worker rank: they all see the same teacher and the same bundle. Label-free
data is labelled here: its classes come from the teacher's output width, and unlabeled val
images carry the teacher's predictions (so val accuracy is agreement with the teacher).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgekd._io import sha256_file
from edgekd.data import DataBundle, load_data
from edgekd.errors import DataError
from edgekd.models import LoadedModel, check_teacher, load_teacher, teacher_classes
from edgekd.models.evaluate import FrozenTeacher, chance_level, evaluate_torch


@dataclass(frozen=True)
class InputSpec:
    """Where the teacher and the data come from; JSON-able (it travels to the DDP workers)."""

    teacher: str  # a file, or timm:NAME
    data: str = "digits"
    arch: str | None = None
    input_shape: tuple[int, int, int] | None = None
    augment: bool = True
    trust_pickle: bool = False
    max_train: int | None = None
    arch_args: dict | None = None  # timm keyword arguments of `arch` (patch_size=8, ...)
    normalize: str | None = None  # an image folder's mean/std (data.folder.parse_normalize)

    @classmethod
    def from_config(cls, cfg) -> InputSpec:
        """The inputs of a `CompressConfig` (or anything with its teacher/data fields)."""
        return cls(cfg.teacher, cfg.data, cfg.arch, cfg.input_shape, cfg.augment,
                   cfg.trust_pickle, getattr(cfg, "max_train", None),
                   getattr(cfg, "arch_args", None), getattr(cfg, "normalize", None))  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        shape = d.get("input_shape")
        return cls(**(d | {"input_shape": tuple(shape) if shape else None}))


@dataclass(frozen=True)
class Inputs:
    """The loaded teacher, the data bundle it is checked against, and the teacher's identity."""

    teacher: LoadedModel
    data: DataBundle
    teacher_sha: str  # sha256 of the teacher file, or the timm:NAME itself
    shape_from: str = "--input-shape"  # where data.input_shape came from, for the first line
    teacher_top1: tuple[int, float] | None = None  # (val images, top-1): `teacher_check`


TEACHER_CHECK_IMAGES = 128  # val images the teacher is tried on before any work


def teacher_check(teacher: LoadedModel, data: DataBundle, seed: int = 0) -> tuple[int, float]:
    """(images, top-1 percent) of the teacher on up to TEACHER_CHECK_IMAGES labelled val images
    drawn with `seed`: said on a run's first lines, before any work."""
    import torch
    from torch.utils.data import Subset

    n = min(TEACHER_CHECK_IMAGES, len(data.val))
    idx = torch.randperm(len(data.val), generator=torch.Generator().manual_seed(seed))[:n]
    acc, _ = evaluate_torch(FrozenTeacher(teacher.module).module, Subset(data.val, idx.tolist()))
    return n, acc


def teacher_warning(inputs: Inputs, normalize: str | None = None) -> str | None:
    """A line when the teacher's `teacher_check` top-1 is near a guess's (under chance +
    1/classes, `models.evaluate.chance_level`): its images are preprocessed unlike its
    training images (an image folder's `--normalize`), or it is not trained."""
    from pathlib import Path

    if inputs.teacher_top1 is None:
        return None
    n, acc = inputs.teacher_top1
    k = inputs.data.num_classes
    if acc >= chance_level(k, n) + 100 / k:
        return None
    folder = Path(inputs.data.name).is_dir()
    norm = ("" if not folder else f" (--normalize {normalize})" if normalize else
            " (image folders are normalised with the ImageNet mean/std unless --normalize says "
            "otherwise)")  # fmt: skip
    return (f"the teacher scores {acc:.1f}% on {n} val images, near a guess's ({100 / k:.1f}% "
            f"for {k} classes): are the images preprocessed as it was trained on them{norm}? "
            "Is it trained?")  # fmt: skip


def load_inputs(spec: InputSpec) -> Inputs:
    """Load and check the teacher and the data of `spec` (an `EdgekdError` line on bad input)."""
    if spec.teacher.startswith("timm:"):
        data = load_data(spec.data, spec.input_shape, spec.augment, spec.max_train, spec.normalize)
        if not data.labeled:
            raise DataError(
                "label-free data needs a trained teacher file, not a timm:NAME teacher",
                value=spec.teacher,
                fix="pass the trained teacher (checkpoint, TorchScript or .pt2)",
            )
        teacher = load_teacher(spec.teacher, num_classes=data.num_classes)
        shape_from = "--input-shape" if spec.input_shape else "the data's default"
    else:
        teacher = load_teacher(spec.teacher, arch=spec.arch, trust_pickle=spec.trust_pickle,
                               arch_args=spec.arch_args, input_shape=spec.input_shape)  # fmt: skip
        shape = spec.input_shape or teacher.input_shape
        data = load_data(spec.data, shape, spec.augment, spec.max_train, spec.normalize)
        shape_from = ("--input-shape" if spec.input_shape else
                      f"the teacher file ({teacher.kind})" if teacher.input_shape else
                      "the data's default")  # fmt: skip
    if not data.labeled:
        data = label_with_teacher(teacher, data)
    check_teacher(teacher, data.input_shape, data.num_classes)
    sha = sha256_file(spec.teacher) if teacher.kind != "timm" else spec.teacher
    top1 = teacher_check(teacher, data) if data.val_labeled else None
    return Inputs(teacher, data, sha, shape_from, top1)


def label_with_teacher(teacher: LoadedModel, data: DataBundle) -> DataBundle:
    """Label-free data: the classes come from the teacher's output width; unlabeled val
    images get the teacher's predictions, so val accuracy is agreement with the teacher."""
    from edgekd.data.folder import Relabeled

    num_classes = teacher_classes(teacher, data.input_shape)
    val = data.val
    if data.val_labeled:
        top = max(getattr(val, "targets", [0]))
        if top >= num_classes:
            raise DataError(
                "val/ class index beyond the teacher's outputs",
                value=f"class {top} vs {num_classes} teacher outputs",
                fix="name val/ class folders 0..K-1 after the teacher's output indices",
            )
    else:
        _, logits = evaluate_torch(FrozenTeacher(teacher.module).module, data.val)
        val = Relabeled(data.val, logits.argmax(1).tolist())
    return dataclasses.replace(
        data,
        val=val,
        num_classes=num_classes,
        class_names=tuple(str(i) for i in range(num_classes)),
    )
