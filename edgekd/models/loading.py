"""Load a teacher safely: TorchScript, torch.export programs (.pt2), state dicts, timm:NAME.

Nothing here unpickles code unless the caller passes `trust_pickle=True`: plain `.pt` files are
read with `torch.load(weights_only=True)`, which only rebuilds tensors and plain containers, and a
`.pt2` archive is inspected first (`pt2_safety.unsafe_entries`): one that holds pickled payloads,
calls outside torch's operators or code in its shape expressions is refused. TorchScript files
are different: their graph is code, run as such (the README's Safety section says so).

An edgekd checkpoint is a dict `{"arch": timm name, "num_classes": int, "state_dict": ...,
"input_shape": [C, H, W]}` saved with `torch.save`; it loads without `--arch`.
"""

from __future__ import annotations

import difflib
import io
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd.config import MAX_CLASSES, shape_problem
from edgekd.errors import ModelLoadError
from edgekd.models.pt2_safety import unsafe_entries


@dataclass
class LoadedModel:
    """A teacher ready to run: the module, how it was stored, and what the file said of itself."""

    module: nn.Module
    kind: str  # torchscript | exported | checkpoint | state_dict | pickle | timm | onnx
    source: str
    arch: str | None = None
    num_classes: int | None = None
    input_shape: tuple[int, int, int] | None = None
    program: Any = None  # the torch.export ExportedProgram, for ONNX export
    meta: dict = field(default_factory=dict)


def create_timm(name: str, num_classes: int | None, **kwargs) -> nn.Module:
    """A timm model with random init (never downloads weights); clear error for unknown names.

    One keyword is edgekd's own, not timm's: `stem_pool=False` removes the max-pool after a
    timm ResNet's stem (resnet18, resnet18d, resnet10t, ...), so a 32x32 image leaves the stem
    as a 16x16 map rather than 8x8, as the CIFAR-sized ResNets keep it (about 2.3x the compute
    of a resnet18 training step at 32x32, measured on the CPU). The checkpoint records it with
    the other `arch_args`, so the network rebuilds the same on loading."""
    import timm

    if not timm.is_model(name):
        names = timm.list_models()
        close = difflib.get_close_matches(name, names, n=3)
        raise ModelLoadError(
            "unknown timm model",
            value=repr(name),
            fix=(f"did you mean {', '.join(close)}? " if close else "")
            + "see timm.list_models() for valid names",
        )
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    stem_pool = kwargs.pop("stem_pool", True)
    if not isinstance(stem_pool, bool):
        raise ModelLoadError("stem_pool takes true or false", value=repr(stem_pool),
                             fix="pass --arch-args stem_pool=false")  # fmt: skip
    model = timm.create_model(name, pretrained=False, **kwargs)
    if not stem_pool:
        _drop_stem_pool(model, name)
    return model


def _drop_stem_pool(model: nn.Module, name: str) -> None:
    """`stem_pool=False` (see create_timm): the stem's max-pool becomes an identity, and timm's
    feature_info (which the feature losses read) halves the reductions after it."""
    from timm.models.resnet import ResNet

    if not isinstance(model, ResNet) or not isinstance(model.maxpool, nn.MaxPool2d):
        raise ModelLoadError(
            "stem_pool=false applies to timm ResNets with a max-pool stem only",
            value=repr(name), fix="drop stem_pool from --arch-args, or use resnet18/resnet10t/...",
        )  # fmt: skip
    model.maxpool = nn.Identity()
    for f in getattr(model, "feature_info", []):
        if str(f.get("module", "")).startswith("layer"):
            f["reduction"] = int(f["reduction"]) // 2


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _load_state_dict(module: nn.Module, sd: dict, arch: str, source: str, built: dict) -> None:
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))
        how = ", ".join(f"{k}={v}" for k, v in built.items()) or "timm's defaults"
        if "size mismatch" in first and ("pos_embed" in first or "patch_embed" in first):
            fix = (f"{first[:160]}; the weights were trained at another input size or patch "
                   f"size than {arch} built with {how}: pass --input-shape C,H,W of its "
                   "training and --arch-args patch_size=N (timm keyword arguments)")  # fmt: skip
        elif "size mismatch" in first:
            fix = (f"{first[:160]}; the weights' shapes differ from {arch} built with {how}: "
                   "pass its timm keyword arguments with --arch-args KEY=VALUE,..., or check "
                   "--arch")  # fmt: skip
        else:
            fix = f"{first[:200]}; check --arch (and that --data has the teacher's classes)"
        raise ModelLoadError(f"state dict does not fit timm {arch!r}", value=source,
                             fix=fix) from None  # fmt: skip


def build_timm(
    arch: str,
    num_classes: int | None,
    arch_args: dict | None,
    input_shape: tuple[int, int, int] | None,
) -> tuple[nn.Module, dict]:
    """timm `arch` with `arch_args`, at the input size when the model takes an `img_size`
    (ViTs, DeiTs; CNNs do not): (model, the keyword arguments it was built with)."""
    kwargs = dict(arch_args or {})
    if input_shape is not None and "img_size" not in kwargs:
        try:
            sized = {**kwargs, "img_size": tuple(input_shape[1:])}
            return create_timm(arch, num_classes, **sized), sized
        except TypeError:  # the architecture has no img_size
            pass
    try:
        return create_timm(arch, num_classes, **kwargs), kwargs
    except TypeError as e:
        raise ModelLoadError(
            f"timm {arch!r} does not take these arguments",
            value=", ".join(f"{k}={v}" for k, v in kwargs.items()),
            fix=f"{str(e).splitlines()[0][:160]}; check --arch-args",
        ) from None


def _infer_num_classes(sd: dict) -> int | None:
    """The output width of the last 2-D weight in a state dict (the classifier, in timm models)."""
    last = None
    for k, v in sd.items():
        if isinstance(v, torch.Tensor) and v.dim() == 2 and k.endswith("weight"):
            last = v
    return int(last.shape[0]) if last is not None else None


def load_teacher(
    spec: str,
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    trust_pickle: bool = False,
    arch_args: dict | None = None,
    input_shape: tuple[int, int, int] | None = None,
) -> LoadedModel:
    """Load the teacher named by `spec` (a file path or `timm:NAME`), in eval mode.

    Args:
        spec: Path to a TorchScript file, a `.pt2` torch.export program, an edgekd checkpoint,
            a plain state dict or an ONNX model (run in ONNX Runtime: `OnnxTeacher`); or
            `timm:NAME` for a fresh (random) timm model.
        arch: timm architecture for a plain state dict.
        num_classes: classes of the data, used for `timm:NAME` and plain state dicts.
        trust_pickle: allow a fully pickled `nn.Module` (runs code from the file).
        arch_args: timm keyword arguments for `arch` (a checkpoint's own `arch_args` are used
            when not given).
        input_shape: C,H,W the state dict was trained at: timm models that take an
            `img_size` (ViTs) are built at it (a checkpoint's own `input_shape` otherwise).
    """
    if spec.startswith("timm:"):
        name = spec.removeprefix("timm:")
        m = create_timm(name, num_classes)
        return LoadedModel(m.eval(), "timm", spec, arch=name, num_classes=num_classes)

    path = Path(spec)
    if not path.exists():
        raise ModelLoadError("teacher file not found", value=str(path), fix="check the path")
    if path.is_dir():
        raise ModelLoadError("teacher path is a folder, not a file", value=str(path))
    if path.stat().st_size == 0:
        raise ModelLoadError("teacher file is empty", value=str(path), fix="re-save the model")

    names = _zip_names(path)
    if any(n.endswith("/constants.pkl") or "/code/__torch__/" in n for n in names):
        try:
            m = torch.jit.load(str(path), map_location="cpu", _restore_shapes=True)
        except Exception as e:
            raise ModelLoadError(
                "cannot read TorchScript file (corrupt or truncated?)",
                value=str(path),
                fix=str(e).splitlines()[0][:200],
            ) from None
        return LoadedModel(m.eval(), "torchscript", str(path), input_shape=_traced_shape(m))
    if any(n.endswith("/archive_format") or n.endswith("/models/model.json") for n in names):
        data = path.read_bytes()
        unsafe = unsafe_entries(data)
        if unsafe and not trust_pickle:
            more = f" (and {len(unsafe) - 1} more)" if len(unsafe) > 1 else ""
            raise ModelLoadError(
                f"teacher .pt2 holds {unsafe[0]}{more}, which torch.export.load would run as code",
                value=str(path),
                fix="re-export it with torch.export.save from a plain model, save a state dict "
                "instead, or pass --trust-pickle if you trust the file's source",
            )
        try:
            program = torch.export.load(io.BytesIO(data))
        except Exception as e:
            raise ModelLoadError(
                "cannot read torch.export program (corrupt or truncated?)",
                value=str(path),
                fix=str(e).splitlines()[0][:200],
            ) from None
        return LoadedModel(program.module(), "exported", str(path), program=program)

    if not names and _is_onnx(path):
        from edgekd.models.onnx_teacher import OnnxTeacher

        m = OnnxTeacher(path)
        return LoadedModel(m, "onnx", str(path), input_shape=m.input_shape,
                           meta={"onnx_opset": m.opset})  # fmt: skip

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refuses a GLOBAL (a class or function to import and call): that is a
        # pickled object. torch 2.14 words it two ways: "Unsupported global: GLOBAL x.Y" and,
        # for modules it blocks outright (os, subprocess, ...), "unsupported GLOBAL posix.system
        # whose module posix is blocked". Any other refusal (bad opcode, frame) is damage.
        found = re.search(r"unsupported (?:global: )?GLOBAL (\S+)", str(e), re.IGNORECASE)
        if not found:
            raise _unreadable(path, "re-save the model") from None
        blocked = " from a module torch blocks outright" if "is blocked" in str(e) else ""
        if not trust_pickle:
            raise ModelLoadError(
                f"teacher file holds pickled Python objects ({found.group(1)}{blocked}), which "
                "can run code when loaded",
                value=str(path),
                fix="save a state dict, TorchScript or torch.export program instead, "
                "or pass --trust-pickle if you trust the file's source",
            ) from None
        obj = _load_trusted_pickle(path)
    except Exception as e:  # zip/EOF/format errors from a damaged file, or another format
        raise _unreadable(path, f"{type(e).__name__}; re-save the model") from None

    if isinstance(obj, nn.Module):
        return LoadedModel(obj.eval(), "pickle", str(path))
    if not isinstance(obj, dict):
        raise ModelLoadError(
            "teacher file holds neither a model nor a state dict",
            value=f"{path} ({type(obj).__name__})",
            fix="save model.state_dict(), TorchScript, or a torch.export program",
        )
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        sd = obj["state_dict"]
        arch = arch or obj.get("arch")
        kind = "checkpoint"
        shape = obj.get("input_shape")
        recorded = tuple(int(d) for d in shape) if shape else None
        input_shape = input_shape or recorded
        if arch_args is None and isinstance(obj.get("arch_args"), dict):
            arch_args = obj["arch_args"]
    else:
        sd, kind = obj, "state_dict"
    if not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelLoadError(
            "teacher file is a dict but not a state dict of tensors", value=str(path)
        )
    if input_shape is not None:
        bad = shape_problem(input_shape)
        if bad:
            raise ModelLoadError(
                f"checkpoint's input_shape {bad}", value=f"{path} ({list(input_shape)})",
                fix="re-save the checkpoint with the shape it was trained at",
            )  # fmt: skip
    if not arch:
        raise ModelLoadError(
            "teacher file is a plain state dict; its architecture is unknown",
            value=str(path),
            fix="pass --arch TIMM_NAME (e.g. --arch resnet18)",
        )
    n_cls = _infer_num_classes(sd) or num_classes
    if n_cls is not None and not 1 <= n_cls <= MAX_CLASSES:
        raise ModelLoadError(
            f"state dict's classifier has {n_cls} outputs, outside 1..{MAX_CLASSES}",
            value=str(path),
            fix="check that the file is the teacher's state dict",
        )
    m, built = build_timm(arch, n_cls, arch_args, input_shape)
    _load_state_dict(m, sd, arch, str(path), built)
    return LoadedModel(
        m.eval(),
        kind,
        str(path),
        arch=arch,
        num_classes=n_cls,
        input_shape=input_shape,
        meta={"arch_args": {k: v for k, v in built.items() if k != "img_size"}},
    )


def _traced_shape(m) -> tuple[int, int, int] | None:
    """C,H,W of the example input a traced TorchScript file stores (`traced_inputs.pkl`, read
    back with `_restore_shapes=True`); None for scripted modules or other input ranks."""
    try:
        sizes = list(m.graph.inputs())[1].type().sizes()
    except (IndexError, AttributeError, RuntimeError):
        return None
    if not sizes or len(sizes) != 4 or not all(isinstance(d, int) and d > 0 for d in sizes):
        return None
    return int(sizes[1]), int(sizes[2]), int(sizes[3])


def _unreadable(path: Path, fix: str) -> ModelLoadError:
    """The error for a teacher file torch cannot read."""
    return ModelLoadError(
        "cannot read teacher file (corrupt or truncated?)", value=str(path), fix=fix
    )


def _is_onnx(path: Path) -> bool:
    """Whether the file parses as an ONNX ModelProto with a graph (read without external data)."""
    try:
        import onnx

        m = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return len(m.graph.node) > 0 and m.ir_version > 0


def _load_trusted_pickle(path: Path) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:
        raise ModelLoadError(
            "cannot unpickle teacher file",
            value=str(path),
            fix=f"{type(e).__name__}: {str(e).splitlines()[0][:160]}",
        ) from None


def save_checkpoint(
    path: str | Path,
    module: nn.Module,
    arch: str,
    num_classes: int,
    input_shape: tuple[int, int, int] | None = None,
    arch_args: dict | None = None,
) -> Path:
    """Save a timm model as an edgekd checkpoint (loads with weights_only=True, no --arch);
    `arch_args` are the timm keyword arguments it was built with (patch_size=8, ...)."""
    from edgekd._io import atomic_path

    payload = {"arch": arch, "num_classes": int(num_classes), "state_dict": module.state_dict()}
    if input_shape:
        payload["input_shape"] = list(input_shape)
    if arch_args:
        payload["arch_args"] = dict(arch_args)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)
