"""`CompressConfig` -> each stage's plan. The only reader of the config besides the inputs.

`make_plans` checks everything that can be checked before any loading (loss name and
arguments, calibration recipe, device, target), so bad input fails before the run directory
is touched; `Plans.check(inputs)` checks what needs the loaded teacher and data.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekd.config import Budgets, CompressConfig
from edgekd.distill import TrainConfig
from edgekd.distill.losses._registry import loss_class, resolve_loss_args
from edgekd.distill.losses.base import TEACHER_NEEDS
from edgekd.distributed import check_gpus, resolve_device
from edgekd.errors import InputError
from edgekd.export import DEFAULT_OPSET
from edgekd.inputs import Inputs, InputSpec
from edgekd.models import build_student
from edgekd.models.onnx_teacher import opaque_kind
from edgekd.pipeline.context import ScaleOut
from edgekd.quant.recipes import CalibRecipe, resolve_calib
from edgekd.targets import TargetProfile, get_target

SEARCH_MODES = ("auto", "search")


@dataclass(frozen=True)
class SearchPlan:
    mode: str  # auto | search
    latency_ms: float | None  # the latency budget, or None
    few_shot_k: int | None  # None: the mode's default (3 for auto, 0 for search)
    few_shot_epochs: int


@dataclass(frozen=True)
class DistillPlan:
    student: str  # a timm name: given, or the search's pick; "same": the teacher's architecture
    train: TrainConfig
    generations: int = 1  # Born-Again: each generation distils from the previous one
    ensemble: bool = False  # ... or from the ensemble of all previous generations


@dataclass(frozen=True)
class QuantPlan:
    calib: CalibRecipe
    qat: TrainConfig  # qat.epochs == 0: calibration alone (PTQ)
    batch_size: int
    seed: int
    max_accuracy_drop: float | None  # over it, the most sensitive layers stay in float
    learn_ranges: bool = False  # LSQ: activation scales trained in QAT (ONNX Runtime graph)


@dataclass(frozen=True)
class ExportPlan:
    opset: int = DEFAULT_OPSET  # nothing is calibrated here: each INT8 graph is written as trained
    mixed_precision: bool = True  # ONNX Runtime, timed here: blocks in float where faster
    threads: int = 1  # the validate stage's thread count, for those timings
    remote: bool = False  # the target is timed on a device over SSH, not here


@dataclass(frozen=True)
class ValidatePlan:
    threads: int
    warmup: int
    iters: int
    remote: str | None = None  # user@host[:port]: measure and check on the device
    ssh_option: tuple[str, ...] = ()
    trtexec: str = ""
    remote_python: str = "python3"


@dataclass(frozen=True)
class Plans:
    inputs: InputSpec
    target: TargetProfile
    budgets: Budgets
    device: str
    seed: int
    student: str  # a timm name, or auto / search / same
    generations: int
    ensemble: bool
    search: SearchPlan | None
    train: TrainConfig
    quant: QuantPlan
    export: ExportPlan
    validate: ValidatePlan
    scale_out: ScaleOut
    facts: dict  # what the manifest records about the run (config, budgets, target, ...)

    def distill(self, pick=None) -> DistillPlan:
        """The distillation plan for the searched `pick` (None: the given student)."""
        return DistillPlan(pick.name if pick is not None else self.student, self.train,
                           self.generations, self.ensemble)  # fmt: skip

    def check(self, inputs: Inputs) -> None:
        """What needs the loaded inputs: a ce loss needs labels; a feature loss a teacher whose
        layers can be hooked (not TorchScript, not ONNX); a given student builds."""
        kind = opaque_kind(inputs.teacher.module)
        for phase in (self.train, self.quant.qat):
            resolve_loss_args(phase.loss, phase.loss_args, labeled=inputs.data.labeled)
            if kind is not None and loss_class(phase.loss).needs & TEACHER_NEEDS:
                raise InputError(
                    f"the {phase.loss} loss compares the teacher's features, and a {kind} "
                    "teacher's layers cannot be hooked",
                    value=inputs.teacher.source,
                    fix="use a logit loss (--kd-loss kd, dkd, dist, ...), or pass the teacher as "
                    "a checkpoint or a state dict with --arch",
                )
        if self.search is None:
            build_student(student_arch(self.student, inputs), inputs.data.num_classes,
                          inputs.data.input_shape)  # fmt: skip


def student_arch(student: str, inputs: Inputs) -> str:
    """The timm name of `student`; "same" is the teacher's own architecture."""
    if student != "same":
        return student
    arch, kind = inputs.teacher.arch, inputs.teacher.kind
    if not arch or kind in ("torchscript", "exported", "onnx", "pickle"):
        raise InputError("--student same needs a teacher whose timm architecture is known",
                         value=f"a {kind} teacher ({inputs.teacher.source})",
                         fix="pass a checkpoint or a state dict with --arch, or name the student")
    return arch


def make_plans(cfg: CompressConfig, budgets: Budgets | None = None) -> Plans:
    """Every stage's plan for `cfg`; `budgets` (default `cfg.budgets`) are the merged ones."""
    budgets = budgets or cfg.budgets
    target = get_target(cfg.target)
    if not target.measured and target.cost_model is None:
        raise InputError(
            f"target {target.name!r} is neither this machine nor has a cost model",
            fix="add cost_model to its profile so its latency can be predicted",
        )
    device = resolve_device(cfg.device)
    check_gpus(device, cfg.nproc_per_node, "--nproc-per-node")
    recipe = resolve_calib(cfg.calib, cfg.calib_size, cfg.calib_percentile)
    loss_args = resolve_loss_args(
        cfg.kd_loss, cfg.kd_args, temperature=cfg.temperature, alpha=cfg.alpha
    )  # a bad loss name or argument fails before any loading
    common = dict(weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, loss=cfg.kd_loss,
                  loss_args=loss_args, optimizer=cfg.optimizer, grad_clip=cfg.grad_clip,
                  teacher_cache=cfg.teacher_cache, student_layer=cfg.student_layer,
                  teacher_layer=cfg.teacher_layer, device=device, kd_augment=cfg.kd_augment,
                  mixup_beta=cfg.mixup_beta, mixup_unmixed=cfg.mixup_unmixed,
                  hard_fraction=cfg.hard_fraction)  # fmt: skip
    train = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, seed=cfg.seed, schedule=cfg.schedule,
                        warmup_epochs=cfg.warmup_epochs, ema_decay=cfg.ema,
                        weight_average=cfg.weight_average,
                        weight_average_bn=cfg.weight_average_bn,
                        swad_args=dict(cfg.swad_args), **common)  # fmt: skip
    if cfg.qat_kd_loss:  # the QAT phase's own loss (qfd: the teacher's quantized features)
        common.update(loss=cfg.qat_kd_loss, loss_args=resolve_loss_args(cfg.qat_kd_loss,
                                                                        cfg.qat_kd_args))
    elif cfg.qat_kd_args:
        raise InputError("--qat-kd-args needs --qat-kd-loss", value=cfg.qat_kd_args,
                         fix="name the QAT phase's loss, e.g. --qat-kd-loss qfd")  # fmt: skip
    qat = TrainConfig(epochs=cfg.qat_epochs, lr=cfg.qat_lr, seed=cfg.seed + 1, schedule="cosine",
                      amp="off", **common)  # fmt: skip  # fake quantization stays in float32
    if cfg.born_again_teacher == "ensemble" and loss_class(cfg.kd_loss).needs & TEACHER_NEEDS:
        raise InputError(
            f"the {cfg.kd_loss} loss taps the teacher's layers, and an ensemble of generations "
            "gives logits only",
            value="--born-again-teacher ensemble",
            fix="use a logit loss (kd, dkd, ofa, ...) or --born-again-teacher last",
        )
    search = None
    if cfg.student in SEARCH_MODES:
        search = SearchPlan(cfg.student, budgets.latency_ms, cfg.few_shot_k, cfg.few_shot_epochs)
    remote = None
    if cfg.remote:
        remote = dict(remote=cfg.remote, ssh_option=tuple(cfg.ssh_option), trtexec=cfg.trtexec,
                      remote_python=cfg.remote_python)  # fmt: skip
    return Plans(
        inputs=InputSpec.from_config(cfg),
        target=target,
        budgets=budgets,
        device=device,
        seed=cfg.seed,
        student=cfg.student,
        generations=cfg.generations,
        ensemble=cfg.born_again_teacher == "ensemble",
        search=search,
        train=train,
        quant=QuantPlan(recipe, qat, cfg.batch_size, cfg.seed, budgets.max_accuracy_drop,
                        learn_ranges=cfg.learn_ranges),
        export=ExportPlan(mixed_precision=cfg.mixed_precision, threads=cfg.threads,
                          remote=bool(cfg.remote)),
        validate=ValidatePlan(cfg.threads, cfg.latency_warmup, cfg.latency_iters, **(remote or {})),
        scale_out=ScaleOut(cfg.nproc_per_node, cfg.nnodes, cfg.rdzv_endpoint),
        facts={
            "config": cfg.model_dump(mode="json"),
            "budgets": budgets.model_dump(),
            "target": target.name,
            "seed": cfg.seed,
            "device": device,
        },
    )

