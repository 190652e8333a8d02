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
from edgekd.models.evaluate import FrozenTeacher, evaluate_torch


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
    return Inputs(teacher, data, sha, shape_from)


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
