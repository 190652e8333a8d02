"""What a run needs, as pydantic models: budgets and the compress recipe (YAML/JSON <-> objects)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from edgekd.errors import ConfigError

# Bounds on what a run may allocate from a number the user (or a file) gives: an edge
# classifier's input side and channels, and its classes (ImageNet-21k has 21,841).
MAX_SIDE = 1024
MAX_CHANNELS = 4
MAX_CLASSES = 100_000
# --swad-args names: SWAD's hyper-parameters (edgekd.distill.averaging.SWAD_DEFAULTS) and the
# segment length in steps
SWAD_ARGS = ("n_converge", "n_tolerance", "tolerance_ratio", "frequency")


def parse_arch_args(text: str) -> dict[str, int | float | bool | str]:
    """'patch_size=8,embed_dim=192,global_pool=avg' -> {"patch_size": 8, ...} (ints, floats,
    true/false, else strings)."""
    out: dict[str, int | float | bool | str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"expected KEY=VALUE pairs such as patch_size=8, got {part!r}")
        raw = raw.strip()
        value: int | float | bool | str
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        out[key.strip()] = value
    return out


def shape_problem(shape) -> str | None:
    """What is wrong with a C,H,W input shape (None when it is usable)."""
    if len(shape) != 3 or any(int(d) <= 0 for d in shape):
        return "must be three positive integers C,H,W such as 3,32,32"
    c, h, w = (int(d) for d in shape)
    if c > MAX_CHANNELS:
        return f"has {c} channels; at most {MAX_CHANNELS} (C comes first: C,H,W)"
    if max(h, w) > MAX_SIDE:
        return f"side {max(h, w)} exceeds {MAX_SIDE} pixels (edgekd compresses edge classifiers)"
    return None


# Field name -> the command-line flag that sets it, so validation errors name what the user typed.
FLAG_FOR_FIELD = {
    "latency_ms": "--latency-budget-ms",
    "max_accuracy_drop": "--max-accuracy-drop",
    "max_model_mb": "--max-model-mb",
    "min_parity": "--min-parity",
    "max_device_gap": "--max-device-gap",
    "input_shape": "--input-shape",
    "max_train": "--max-train",
    "qat_epochs": "--qat-epochs",
    "batch_size": "--batch-size",
    "calib_size": "--calib-size",
    "weight_decay": "--weight-decay",
    "latency_warmup": "--latency-warmup",
    "latency_iters": "--latency-iters",
}


class Budgets(BaseModel):
    """What the artifact must meet. A missed budget is a result (exit 2), not an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    latency_ms: float | None = Field(
        None, gt=0, description="Latency budget in ms at `percentile`."
    )
    percentile: Literal[50, 90, 99] = Field(90, description="Latency percentile the budget binds.")
    max_accuracy_drop: float | None = Field(
        2.0, ge=0, le=100, description="Largest allowed top-1 drop vs the teacher, in points."
    )
    max_model_mb: float | None = Field(None, gt=0, description="Largest artifact size in MB.")
    max_device_gap: float | None = Field(
        1.0,
        ge=0,
        le=100,
        description="Largest allowed top-1 difference (points) between the artifact on the "
        "device (--remote) and in ONNX Runtime here; applies when the device was reached.",
    )
    min_parity: float | None = Field(
        95.0,
        ge=0,
        le=100,
        description="Smallest top-1 agreement (%) between the shipped ONNX in ONNX Runtime and "
        "the torch model it was exported from (a variant below it is not shipped while another "
        "passes).",
    )


class CompressConfig(BaseModel):
    """Everything `edgekd compress` needs; the CLI flags map one to one onto these fields."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    teacher: str = Field(description="Teacher file (TorchScript, .pt2, state dict) or timm:NAME.")
    data: str = Field(
        "digits", description="digits | fashion-mnist[:PATH] | image folder | pkg.module:function."
    )
    max_train: int | None = Field(
        None, ge=1, description="Train on this many images (stratified by class, seed 0)."
    )
    normalize: str | None = Field(
        None, description="An image folder's mean/std: imagenet (default), none, or MEAN/STD."
    )
    target: str = Field("host", description="Target profile name or YAML path.")
    student: str = Field(
        "auto", description="timm model name, auto, search, or same (the teacher's architecture)."
    )
    generations: int = Field(
        1, ge=1, le=20,
        description="Born-Again distillation: each generation distils from the last one's "
        "student (generation 1 from the teacher); the last generation ships.",
    )  # fmt: skip
    born_again_teacher: Literal["last", "ensemble"] = Field(
        "last",
        description="Born-Again: each generation learns from the last one, or from the "
        "ensemble (averaged prediction) of all earlier generations.",
    )
    few_shot_k: int | None = Field(
        None,
        ge=0,
        le=100,
        description="--student auto/search: distil the top K by DisWOT and by params briefly, "
        "keep the best (default: 3 for auto, 0 for search).",
    )
    few_shot_epochs: int = Field(2, ge=1, le=1000, description="Epochs of each few-shot run.")
    out: Path = Field(Path("runs/edgekd"), description="Run directory.")
    arch: str | None = Field(None, description="timm architecture of a plain state dict.")
    arch_args: dict[str, int | float | bool | str] | None = Field(
        None, description="timm keyword arguments of --arch, e.g. patch_size=8."
    )
    input_shape: tuple[int, int, int] | None = Field(None, description="C,H,W of one input.")
    trust_pickle: bool = False
    epochs: int = Field(20, ge=1, le=10000)
    qat_epochs: int = Field(2, ge=0, le=10000, description="0 = post-training quantization only.")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-2, gt=0)
    qat_lr: float = Field(1e-4, gt=0)
    mixed_precision: bool = Field(
        True,
        description="Blocks of the INT8 graph run in float where the mixed graph is faster than "
        "all INT8: measured on this machine, or costed by the target's cost model.",
    )
    learn_ranges: bool = Field(
        False,
        description="QAT learns the activation scales (LSQ) instead of keeping the calibrated "
        "ones (ONNX Runtime targets).",
    )
    weight_decay: float = Field(0.05, ge=0)
    kd_loss: str = Field("kd", description="Distillation loss (see `edgekd losses`).")
    kd_args: str | dict | None = Field(
        None, description="Arguments of the KD loss: key=value,key=value (or a mapping)."
    )
    qat_kd_loss: str | None = Field(
        None, description="Distillation loss of the QAT phase (default: --kd-loss), e.g. qfd."
    )
    qat_kd_args: str | dict | None = Field(
        None, description="Arguments of --qat-kd-loss (key=value,key=value)."
    )
    temperature: float | None = Field(
        None, gt=0, description="Shorthand for --kd-args temperature=T (loss default if unset)."
    )
    alpha: float | None = Field(
        None, ge=0, le=1, description="Shorthand for --kd-args alpha=A (loss default if unset)."
    )
    augment: bool = Field(True, description="Random augmentation of training images.")
    kd_augment: Literal["none", "mixup", "mixup-full", "hard"] = Field(  # augment.KD_AUGMENTS
        "none",
        description="Mix training batches for distillation as MIX-KD: mixup (partial) or "
        "mixup-full; or hard (HARD: a learned affine augmentor makes teacher and student "
        "disagree where the teacher stays right). The teacher runs live on the new images.",
    )
    mixup_beta: float = Field(1.0, gt=0, description="Mixing weights ~ Beta(b, b).")
    mixup_unmixed: float = Field(
        0.9, ge=0, le=1,
        description="Partial mixup: this fraction of the batch size is drawn, with "
        "replacement, to stay unmixed (0.9: about 41% of a 64-image batch is mixed).",
    )  # fmt: skip
    hard_fraction: float = Field(
        0.5, gt=0, le=1, description="--kd-augment hard: this fraction of each batch augmented."
    )
    teacher_cache: Literal["auto", "memory", "disk", "off"] = Field(
        "auto", description="Cache teacher outputs when the training transform is deterministic."
    )
    optimizer: Literal["adamw", "sgd"] = "adamw"
    schedule: Literal["onecycle", "cosine"] = Field(
        "onecycle", description="onecycle (15% warm-up, cosine anneal) or cosine."
    )
    warmup_epochs: float = Field(0.0, ge=0, description="Linear warm-up for --schedule cosine.")
    ema: float = Field(0.0, ge=0, lt=1, description="EMA decay of student weights (0 = off).")
    grad_clip: float = Field(0.0, ge=0, description="Gradient-norm clip (0 = off).")
    weight_average: Annotated[float, Field(ge=0, lt=1)] | Literal["swad"] | None = Field(
        None,
        description="Average the student's weights uniformly (WAKD) from this fraction of the "
        "distillation steps on (0.1 as the official code), or over SWAD's loss-driven window "
        "(swad); the average is validated, kept, quantized and exported.",
    )  # fmt: skip
    swad_args: dict[str, float] = Field(
        default_factory=dict,
        description="--weight-average swad: n_converge=3,n_tolerance=6,tolerance_ratio=1.3,"
        "frequency=STEPS (default a fifth of an epoch).",
    )
    weight_average_bn: Literal["recompute", "frozen"] = Field(
        "recompute",
        description="BatchNorm under --weight-average: recompute the averaged weights' "
        "statistics, or frozen (eval mode all phase, the official code: for trained students).",
    )
    student_layer: str | None = Field(None, description="Student module tapped by feature losses.")
    teacher_layer: str | None = Field(None, description="Teacher module tapped by feature losses.")
    calib_size: int = Field(256, ge=1)
    calib: str = Field("max", description="max | entropy | percentile | recipe YAML path.")
    calib_percentile: float = Field(99.99, gt=50, le=100)
    seed: int = 0
    threads: int = Field(1, ge=1, description="ONNX Runtime intra-op threads for latency.")
    device: str = Field(
        "auto",
        description="Training device: auto, cpu, cuda or cuda:N (user@host means --remote).",
    )
    nproc_per_node: int = Field(
        1, ge=1, le=1024, description="Distill with this many processes per node (torchrun)."
    )
    nnodes: int = Field(1, ge=1, le=4096, description="Nodes of a multi-node torchrun job.")
    rdzv_endpoint: str | None = Field(
        None, description="host:port of the rendezvous for --nnodes > 1."
    )
    remote: str | None = Field(
        None, description="Validate on the device over SSH: user@host[:port]."
    )
    ssh_option: list[str] = Field(default=[], description="ssh -o options for --remote.")
    trtexec: str = Field("/usr/src/tensorrt/bin/trtexec", description="trtexec on the device.")
    remote_python: str = Field("python3", description="Python on the device (for the agent).")
    latency_warmup: int = Field(50, ge=0)
    latency_iters: int = Field(300, ge=10)
    budgets: Budgets = Budgets()
    resume: bool = False
    force: bool = False

    @model_validator(mode="before")
    @classmethod
    def _device_as_remote(cls, values: Any) -> Any:
        """`--device user@host` names the target device (as in `edgekd profile`)."""
        if isinstance(values, dict) and "@" in str(values.get("device") or ""):
            values = dict(values)
            if values.get("remote") in (None, values["device"]):
                values["remote"] = values["device"]
                values["device"] = "auto"
        return values

    @model_validator(mode="after")
    def _rendezvous(self) -> CompressConfig:
        if self.force and self.resume:
            raise ValueError(
                "--force and --resume contradict each other (start the run over, or continue "
                "it): pass one of them"
            )
        if self.few_shot_k is not None and self.student not in ("auto", "search"):
            raise ValueError(
                f"--few-shot-k {self.few_shot_k} confirms a student search, not a given "
                f"--student {self.student}: use --student auto or search"
            )
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError("--nnodes > 1 needs --rdzv-endpoint host:port")
        if self.generations > 1 and (self.nproc_per_node > 1 or self.nnodes > 1):
            raise ValueError(
                f"--generations {self.generations} runs in one process: drop --nproc-per-node "
                "/ --nnodes, or train one generation"
            )
        if self.born_again_teacher == "ensemble" and self.generations < 3:
            raise ValueError(
                f"--born-again-teacher ensemble needs --generations 3 or more (with "
                f"{self.generations} there is at most one earlier generation to ensemble)"
            )
        if self.generations > 1 and self.student in ("auto", "search"):
            raise ValueError(
                f"--generations {self.generations} distils one architecture again and again: "
                f"give --student (a timm name, or same), not {self.student}"
            )
        if self.swad_args and self.weight_average != "swad":
            raise ValueError("--swad-args needs --weight-average swad")
        if self.ema > 0 and self.weight_average is not None:
            raise ValueError(
                f"--ema {self.ema} and --weight-average {self.weight_average} both average the "
                "weights: pick one"
            )
        world = self.nproc_per_node * self.nnodes
        if self.batch_size % world:
            raise ValueError(
                f"--batch-size {self.batch_size} does not split over {world} processes; the "
                "batch size is the global batch: use a multiple of --nproc-per-node x --nnodes"
            )
        return self

    @field_validator("ssh_option", mode="before")
    @classmethod
    def _ssh_options(cls, v: Any) -> Any:
        return [] if v is None else v

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", v):
            raise ValueError("expected auto, cpu, cuda or cuda:N")
        return v

    @field_validator("weight_average", mode="before")
    @classmethod
    def _weight_average(cls, v: Any) -> Any:
        if v is None or v == "swad":
            return v
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError("give a fraction of the steps in [0, 1), e.g. 0.1, or swad") from None
        if not 0 <= f < 1:
            raise ValueError("give a fraction of the steps in [0, 1), e.g. 0.1, or swad")
        return f

    @field_validator("swad_args", mode="before")
    @classmethod
    def _parse_swad_args(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, str):
            out = parse_arch_args(v)
            bad = [k for k in out if k not in SWAD_ARGS]
            if bad:
                raise ValueError(f"unknown {', '.join(bad)}: use {', '.join(SWAD_ARGS)}")
            return out
        return v

    @field_validator("arch_args", mode="before")
    @classmethod
    def _parse_arch_args(cls, v: Any) -> Any:
        if isinstance(v, str):
            return parse_arch_args(v)
        return v

    @field_validator("input_shape", mode="before")
    @classmethod
    def _parse_shape(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                v = tuple(int(p) for p in v.replace("x", ",").split(","))
            except ValueError:
                raise ValueError("expected three integers C,H,W such as 3,32,32") from None
        if v is not None and (bad := shape_problem(v)):
            raise ValueError(f"the input shape {bad}")
        return v


def build_config(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """Validate `values` into `model`; the first pydantic error becomes one ConfigError line."""
    try:
        return model(**values)
    except ValidationError as e:
        err = e.errors()[0]
        if not err["loc"]:  # a rule across options (model validator): its message says it all
            msg = err["msg"].removeprefix("Value error, ")
            raise ConfigError(msg) from None
        # the last field name in the location (a union adds its member's tag, e.g.
        # "constrained-float", which names no option)
        names = [str(p) for p in err["loc"] if isinstance(p, str) and p.isidentifier()]
        field = names[-1] if names else str(err["loc"][-1])
        flag = FLAG_FOR_FIELD.get(field, "--" + field.replace("_", "-"))
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"invalid value for {flag}", value=repr(err.get("input")), fix=msg
        ) from None
