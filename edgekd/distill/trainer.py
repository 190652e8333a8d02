"""The distillation loop: a student learns from a frozen teacher; checkpoint every epoch, keep best.

Runs repeat exactly on the CPU for a given seed, also across `resume`: the shuffle order and
the augmentation noise of epoch `e` are seeded from (seed, e), not carried in RNG state, and
the checkpoint holds model, optimizer, scheduler, loss adapters and EMA weights.

The teacher runs live every step unless the training transform is deterministic
(`bundle.augmented` is False): then its outputs are computed once and cached (in memory, or
on disk next to the checkpoints), which is what makes KD cost about as much as plain training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from edgekd._io import atomic_path
from edgekd.data import DataBundle, loader
from edgekd.distill.augment import KD_AUGMENTS, MIXUPS, Mixup, step_generator
from edgekd.distill.averaging import SWAD_DEFAULTS, Swad, WeightAverage, swapped
from edgekd.distill.guards import first_nonfinite_module
from edgekd.distill.hard import HardAugment
from edgekd.distill.losses import KDBatch, create_loss
from edgekd.distill.taps import Taps, classifier_module, describe_module
from edgekd.distill.teacher_stats import (
    teacher_class_means,
    teacher_confidence_over,
    teacher_feature_range,
)
from edgekd.errors import ConfigError, StageError
from edgekd.models.evaluate import FrozenTeacher, evaluate_torch
from edgekd.outputs import first_output
from edgekd.progress import Tally


@dataclass(frozen=True)
class TrainConfig:
    """One training phase (distillation, or QAT fine-tuning)."""

    epochs: int
    lr: float
    weight_decay: float = 0.05
    batch_size: int = 64
    seed: int = 0
    loss: str = "kd"
    loss_args: dict = field(default_factory=dict)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    # onecycle: warm-up (15%) then cosine anneal; cosine: `warmup_epochs` linear, then cosine
    schedule: Literal["onecycle", "cosine"] = "onecycle"
    warmup_epochs: float = 0.0
    ema_decay: float = 0.0  # > 0: validate and keep an exponential moving average of the weights
    # a fraction of the phase's steps: from there on a uniform average of the weights (WAKD) is
    # validated and kept (edgekd.distill.averaging); None = off
    # "swad": SWAD's loss-driven window over segment averages instead (averaging.Swad), set by
    # swad_args (n_converge, n_tolerance, tolerance_ratio, frequency in steps)
    weight_average: float | Literal["swad"] | None = None
    weight_average_bn: Literal["recompute", "frozen"] = "recompute"
    swad_args: dict = field(default_factory=dict)
    grad_clip: float = 0.0  # > 0: clip the gradient norm to this
    amp: Literal["auto", "off"] = "auto"  # auto: mixed precision on CUDA, never on the CPU
    teacher_cache: Literal["auto", "memory", "disk", "off"] = "auto"
    cache_limit_gb: float = 4.0  # auto: cache only when the teacher's outputs fit in this
    kd_augment: Literal[KD_AUGMENTS] = "none"  # edgekd.distill.augment, edgekd.distill.hard
    mixup_beta: float = 1.0  # lambda ~ Beta(mixup_beta, mixup_beta)
    mixup_unmixed: float = 0.9  # partial mixup: this fraction of B drawn to stay unmixed
    hard_fraction: float = 0.5  # --kd-augment hard: this fraction of each batch augmented
    student_layer: str | None = None  # feature taps; None = the last stage with >= 2x2 positions
    teacher_layer: str | None = None
    device: str = "cpu"  # where training runs; checkpoints are always loadable on the CPU


@dataclass
class TrainResult:
    best_path: Path
    last_path: Path
    history: list[dict]
    best_val_acc: float
    best_epoch: int
    resumed_from_epoch: int = 0
    teacher_cache: str = "live"
    layers: dict = field(default_factory=dict)
    loss_facts: dict = field(default_factory=dict)  # what the loss measured before training


class _Indexed(Dataset):
    """Yields (x, y, index) so cached teacher outputs can be looked up per sample."""

    def __init__(self, ds: Dataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)  # type: ignore[arg-type]

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        return x, y, i


class EMA:
    """Exponential moving average of a model's floating-point state (parameters and buffers)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.state[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.state[k].copy_(v)

    def swapped_in(self, model: nn.Module):
        """Context: the model holds the EMA weights inside, its own weights again after."""
        return swapped(model, lambda: model.load_state_dict(self.state))


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15
        )
    warm = min(total - 1, round(cfg.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / (warm + 1)
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _optimizer(params: list, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class _TeacherOutputs:
    """The teacher's logits (and tapped features) per batch: live, or from a one-off cache."""

    def __init__(self, taps: Taps, needs: frozenset[str], device: torch.device) -> None:
        self.taps, self.needs, self.device = taps, needs, device
        self.cache: dict[str, torch.Tensor] | None = None
        self.mode = "live"
        self.skip_classes = 0

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, idx: torch.Tensor):
        if self.skip_classes:  # a loss without a teacher term (ce): the teacher is not run
            return torch.zeros(x.shape[0], self.skip_classes, device=self.device), None, None
        if self.cache is not None:
            return tuple(
                self.cache[k][idx].to(self.device) if k in self.cache else None
                for k in ("logits", "feat", "emb")
            )
        logits, feat, emb = self.taps.run(x)
        return logits, feat if "features" in self.needs else None, emb

    @torch.no_grad()
    def build_cache(self, ds: Dataset, batch_size: int, limit_bytes: float, progress=None) -> bool:
        """Run the teacher once over `ds` (in order); False if the outputs would not fit.
        `progress(done, total)`: after each batch."""
        parts: dict[str, list[torch.Tensor]] = {}
        batches = loader(ds, batch_size)
        for i, (x, _y) in enumerate(batches):
            logits, feat, emb = self.taps.run(x.to(self.device))
            got = {"logits": logits, "feat": feat if "features" in self.needs else None}
            got["emb"] = emb if "embeddings" in self.needs else None
            if i == 0:
                per_sample = sum(v[0].numel() * 4 for v in got.values() if v is not None)
                if per_sample * len(ds) > limit_bytes:  # type: ignore[arg-type]
                    return False
            for k, v in got.items():
                if v is not None:
                    parts.setdefault(k, []).append(v.float().cpu())
            if progress is not None:
                progress(i + 1, len(batches))
        self.cache = {k: torch.cat(v) for k, v in parts.items()}
        return True


def _stage_shapes(student: nn.Module, teacher: nn.Module, stages: list[torch.Tensor],
                  classes: int) -> dict[str, tuple]:  # fmt: skip
    """What a per-stage loss (ofa) builds its heads from: the stages' raw shapes, the
    classifiers' input widths (the teacher's only where its layers can be read), the classes,
    and a ViT student's prefix-token count."""
    out: dict[str, tuple] = {
        "stages_s": tuple(tuple(f.shape[1:]) for f in stages),
        "classes": (classes,),
        "prefix_s": (int(getattr(student, "num_prefix_tokens", 0) or 0),),
    }
    for key, model in (("dim_s", student), ("dim_t", teacher)):
        try:
            width = getattr(classifier_module(model), "in_features", None)
        except ConfigError:
            width = None
        if width:
            out[key] = (int(width),)
    if "dim_s" not in out:
        out["dim_s"] = (int(stages[-1].shape[1 if stages[-1].dim() == 4 else -1]),)
    return out


@dataclass(frozen=True)
class _World:
    """This process's place in a torch.distributed job (rank 0 of 1 without one)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        if self.size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t)
        return t.tolist()


def epoch_loader(ds: Dataset, batch_size: int, world: _World, seed: int, epoch: int):
    """This rank's shuffled batches of epoch `epoch`. `batch_size` is the global batch: each of
    the `world.size` ranks gets `batch_size // world.size` images a step.

    Every world size draws the permutation `randperm(len(ds))` seeded with `seed + epoch`
    (DistributedSampler's rule) and deals it out by rank: index i to rank i mod size, the
    tail padded from the start. So step k of all ranks together sees exactly the images of
    one process's step k. (A DataLoader shuffling with a seeded generator would not: it draws
    its worker base seed from that generator before the permutation.)"""
    from torch.utils.data import DataLoader
    from torch.utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(ds, world.size, world.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    # the loader's own base-seed draw comes from here, never from the global RNG
    g = torch.Generator().manual_seed(seed + epoch)
    return DataLoader(ds, batch_size=batch_size // world.size, sampler=sampler, generator=g)


def _world() -> _World:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return _World(dist.get_rank(), dist.get_world_size())
    return _World()


def _autocast(device: torch.device, cfg: TrainConfig):
    if device.type != "cuda" or cfg.amp == "off":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _hard_augment(teacher: nn.Module, cfg: TrainConfig, sample, device) -> HardAugment:
    """The HARD augmentor for this phase; refused for a teacher with no input gradient."""
    from edgekd.models.onnx_teacher import opaque_kind

    if opaque_kind(teacher) == "ONNX":
        raise ConfigError(
            "--kd-augment hard trains its augmentor through the teacher's gradient, and an "
            "ONNX teacher runs in ONNX Runtime without one",
            value="--kd-augment hard",
            fix="give the teacher as a checkpoint, state dict or TorchScript, or use mixup",
        )
    return HardAugment(sample.shape[1], device, fraction=cfg.hard_fraction)


def _swad(student, cfg: TrainConfig, bundle: DataBundle, device, steps_per_epoch: int) -> Swad:
    """SWAD's window for this phase: segments of `frequency` steps (default a fifth of an
    epoch), each closed by the current model's validation cross-entropy."""
    if not bundle.labeled:
        raise ConfigError("--weight-average swad follows the validation loss, and this data has "
                          "no labels", fix="use --weight-average FRACTION (a uniform average)")
    known = {*SWAD_DEFAULTS, "frequency"}
    bad = sorted(set(cfg.swad_args) - known)
    if bad:
        raise ConfigError("unknown --swad-args", value=", ".join(bad),
                          fix=f"use {', '.join(sorted(known))}")  # fmt: skip
    args = {**SWAD_DEFAULTS, **cfg.swad_args}
    freq = int(args.pop("frequency", None) or max(1, steps_per_epoch // 5))

    @torch.no_grad()
    def val_loss(model: nn.Module) -> float:
        total, n = 0.0, 0
        for x, y in loader(bundle.val, 256):
            out = model(x.to(device))
            out = first_output(out)
            total += F.cross_entropy(out.float(), torch.as_tensor(y).to(device),
                                     reduction="sum").item()  # fmt: skip
            n += len(x)
        return total / max(1, n)

    try:
        return Swad(student, freq, val_loss, cfg.weight_average_bn,
                    n_converge=int(args["n_converge"]), n_tolerance=int(args["n_tolerance"]),
                    tolerance_ratio=float(args["tolerance_ratio"]))  # fmt: skip
    except ValueError as e:
        raise ConfigError(str(e), value=str(cfg.swad_args)) from None


def _save_last(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def distill(
    student: nn.Module,
    teacher: nn.Module,
    bundle: DataBundle,
    cfg: TrainConfig,
    ckpt_dir: str | Path,
    *,
    prefix: str = "",
    resume: bool = False,
    key: str = "",
    extra_state: Callable[[], Any] | None = None,
    on_step: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    distributed: bool = True,
) -> TrainResult:
    """Train `student` against `teacher` on `bundle.train`; validate on `bundle.val` each epoch.

    Args:
        student: the model to train (float, or fake-quantized for QAT).
        teacher: the trained model; pinned to eval mode here.
        cfg: optimiser, schedule, loss, EMA, clipping, cache and tap settings.
        ckpt_dir: where `{prefix}last.pt` (every epoch) and `{prefix}best.pt` are written.
        resume: continue from `{prefix}last.pt` when its `key` equals `key`.
        key: identifies the inputs of this phase; a checkpoint with another key is not resumed.
        extra_state: returns extra state stored with every checkpoint (the quantizer state).
        on_step: called with (epoch, step, steps_per_epoch) after every step.
        on_epoch: called with each epoch's record.
        on_message: called with one-line notes (teacher cache decisions).
        distributed: False trains this process alone even inside a process group (the
            search's few-shot runs: one candidate per rank).
    """
    world = _world() if distributed else _World()
    say = (on_message or (lambda _m: None)) if world.main else (lambda _m: None)
    if cfg.batch_size % world.size:
        raise ConfigError(
            "the batch size must split evenly over the processes",
            value=f"batch {cfg.batch_size} over {world.size}",
            fix="use a batch size divisible by the number of processes (it is the global batch)",
        )
    ckpt_dir = Path(ckpt_dir)
    last_path, best_path = ckpt_dir / f"{prefix}last.pt", ckpt_dir / f"{prefix}best.pt"
    device = torch.device(cfg.device)
    student.to(device)
    teacher.to(device)
    FrozenTeacher(teacher)
    loss_fn = create_loss(cfg.loss, **cfg.loss_args)
    if getattr(loss_fn, "teacher_epochs", 0):  # qfd: the teacher fine-tuned with its quantizer
        from edgekd.distill.qfd_teacher import finetuned_teacher

        teacher = finetuned_teacher(teacher, loss_fn, bundle, seed=cfg.seed, device=device,
                                    path=ckpt_dir / f"{prefix}qfd_teacher.pt", resume=resume,
                                    main=world.main, barrier=world.barrier, say=say)  # fmt: skip
    if not bundle.labeled and cfg.loss == "ce":
        raise ConfigError(
            "the ce loss needs labels and this data has none", fix="pick a KD loss, e.g. kd"
        )
    needs = loss_fn.needs
    sample = torch.stack([bundle.train[i][0] for i in range(min(2, len(bundle.train)))])
    sample = sample.to(device)
    was_training = student.training
    student.eval()
    s_taps, t_taps = (
        Taps(
            model,
            features="features" in needs,
            embeddings="embeddings" in needs,
            layer=layer,
            sample=sample,
            role=role,
            stages=stages,
        )
        for model, layer, role, stages in (
            (student, cfg.student_layer, "student", "stages" in needs),
            (teacher, cfg.teacher_layer, "teacher", "teacher_stages" in needs),
        )
    )
    if needs:
        with torch.no_grad():
            _, f_s, e_s = s_taps.run(sample)
            stages_s = s_taps.stages()
            _, f_t, e_t = t_taps.run(sample)
            stages_t = t_taps.stages()
        shapes = {
            k: tuple(v.shape[1:])
            for k, v in (("feat_s", f_s), ("feat_t", f_t), ("emb_s", e_s), ("emb_t", e_t))
            if v is not None
        }
        if stages_s is not None:
            shapes.update(_stage_shapes(student, teacher, stages_s, bundle.num_classes))
        if stages_t is not None:
            shapes["stages_t"] = tuple(tuple(f.shape[1:]) for f in stages_t)
        loss_fn.setup(shapes)
        learned = [f"{name}: {describe_module(m)}" for name, m in loss_fn.named_children()
                   if any(p.requires_grad for p in m.parameters())]  # fmt: skip
        if stages_s is not None:
            f_s = None  # described as stages below
        said_t = t_taps.describe(None if stages_t else f_t, e_t, stages_t) or "logits only"
        say(f"{cfg.loss} taps: student {s_taps.describe(f_s, e_s, stages_s)}; teacher {said_t}"
            + (f"; learned by the loss: {', '.join(learned)}" if learned else
               "; no adapter (the shapes match)"))  # fmt: skip
    if hasattr(loss_fn, "set_class_means"):
        loss_fn.set_class_means(
            teacher_class_means(
                t_taps, bundle.calib_source, bundle.num_classes, bundle.labeled, device
            )
        )
    loss_facts: dict = {}
    if hasattr(loss_fn, "set_teacher_confidence"):
        beta = teacher_confidence_over(t_taps, bundle.calib_source, device)
        loss_fn.set_teacher_confidence(beta)
        loss_facts["teacher_confidence"] = beta
        say(f"{cfg.loss}: beta = {beta:.4f}, the teacher's mean top-1 probability on its "
            f"{len(bundle.calib_source)} calibration images")  # fmt: skip
    if hasattr(loss_fn, "set_teacher_feature_range"):
        if torch.isnan(loss_fn.feature_range).any():  # else set by the teacher's fine-tuning
            lo, hi = teacher_feature_range(t_taps, bundle.calib_source, device)
            loss_fn.set_teacher_feature_range(lo, hi)
        lo, hi = (float(v) for v in loss_fn.feature_range)
        loss_facts["teacher_feature_range"] = [lo, hi]
        say(f"{cfg.loss}: the teacher's feature is quantized to {loss_fn.bits} bits on [{lo:.4g}, "
            f"{hi:.4g}], its range on {len(bundle.calib_source)} calibration images")  # fmt: skip
    loss_fn.to(device)
    student.train(was_training)

    teacher_out = _TeacherOutputs(t_taps, needs, device)
    cache_mode = cfg.teacher_cache
    mixup = hard = None
    if cfg.kd_augment in MIXUPS:
        mixup = Mixup(cfg.kd_augment, cfg.mixup_beta, cfg.mixup_unmixed)
    elif cfg.kd_augment == "hard":
        hard = _hard_augment(teacher, cfg, sample, device)
    # the teacher's outputs for the images as they reach it: random transforms, mixed or
    # hard-augmented batches cannot come from a cache of the original images
    random_inputs = bundle.augmented or cfg.kd_augment != "none"
    if "teacher_stages" in needs and cache_mode != "off":  # stage maps are too large to cache
        say(f"{cfg.loss} compares the teacher's stage maps: the teacher runs live (no cache)")
        cache_mode = "off"
    if cfg.loss == "ce":  # nothing to learn from the teacher: never run it
        teacher_out.skip_classes, teacher_out.mode, cache_mode = bundle.num_classes, "unused", "off"
    if world.size > 1 and cache_mode != "off" and not random_inputs:
        cache_mode = "disk"  # rank 0 writes the cache once, the other ranks read it
        if not world.main:
            world.barrier()
    if cache_mode != "off" and not random_inputs:
        cache_file = ckpt_dir / f"{prefix}teacher_cache.pt"
        loaded = False
        if cache_mode == "disk" and cache_file.exists():
            ck = torch.load(cache_file, map_location="cpu", weights_only=True)
            if ck.get("key") == key and ck.get("needs") == sorted(needs):
                teacher_out.cache, loaded = ck["cache"], True
        limit = float("inf") if cache_mode in ("memory", "disk") else cfg.cache_limit_gb * 2**30
        running = Tally(say, "teacher outputs for the cache", "batches")
        if loaded or teacher_out.build_cache(bundle.train, 256, limit, progress=running):
            teacher_out.mode = "disk" if cache_mode == "disk" else "memory"
            if cache_mode == "disk" and not loaded:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                with atomic_path(cache_file) as tmp:
                    payload = {"key": key, "needs": sorted(needs), "cache": teacher_out.cache}
                    torch.save(payload, tmp)
            say(f"teacher outputs cached ({teacher_out.mode}): the teacher ran once, not per epoch")
        else:
            say(f"teacher outputs exceed {cfg.cache_limit_gb} GB: the teacher runs live")
    elif cfg.kd_augment != "none" and cache_mode != "off" and teacher_out.mode != "unused":
        made = "hard-augmented" if hard is not None else "mixed"
        say(f"--kd-augment {cfg.kd_augment}: the teacher runs live on the {made} images (a "
            "cache holds only the original images' outputs)")  # fmt: skip
    elif cache_mode in ("memory", "disk") and bundle.augmented:
        say("training images are augmented at random: the teacher runs live (no cache)")
    if world.size > 1 and cfg.teacher_cache != "off" and not random_inputs and world.main:
        world.barrier()  # the cache file is written: the other ranks may read it

    train_module: nn.Module = student
    if world.size > 1:  # gradients averaged over ranks; the taps still hook the inner module
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index or 0] if device.type == "cuda" else None
        train_module = DistributedDataParallel(student, device_ids=ids)
        s_taps.model = train_module

    params = [p for p in student.parameters() if p.requires_grad]
    params += [p for p in loss_fn.parameters() if p.requires_grad]
    opt = _optimizer(params, cfg)
    # the global batch is cfg.batch_size in one process or over all ranks: the same step count
    steps_per_epoch = math.ceil(len(bundle.train) / cfg.batch_size)
    sched = _scheduler(opt, cfg, steps_per_epoch)
    ema = EMA(student, cfg.ema_decay) if cfg.ema_decay > 0 else None
    wa = None
    if cfg.weight_average is not None and ema is not None:
        raise ConfigError("--ema and --weight-average both average the weights: pick one",
                          value=f"ema {cfg.ema_decay}, weight average {cfg.weight_average}")
    if cfg.weight_average == "swad":
        wa = _swad(student, cfg, bundle, device, steps_per_epoch)
        say(f"SWAD window: segments of {wa.frequency} steps, validation loss after each "
            f"(n_converge {wa.n_converge}, n_tolerance {wa.n_tolerance}, tolerance ratio "
            f"{wa.ratio}; BatchNorm {wa.bn})")  # fmt: skip
    elif cfg.weight_average is not None:
        if not 0 <= cfg.weight_average < 1:
            raise ConfigError("--weight-average is the fraction of training after which the "
                              "average starts", value=cfg.weight_average, fix="give 0 <= f < 1")
        wa = WeightAverage(student, int(cfg.weight_average * cfg.epochs * steps_per_epoch),
                           cfg.weight_average_bn)
        say(f"weight average from step {wa.start + 1} of {cfg.epochs * steps_per_epoch} on "
            f"(BatchNorm {wa.bn}): the average is validated and kept")  # fmt: skip
    amp_dtype = _autocast(device, cfg)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    history: list[dict] = []
    best_acc, best_epoch, start = -1.0, 0, 0

    if resume and last_path.exists():
        ck = torch.load(last_path, map_location="cpu", weights_only=True)
        if ck.get("key") == key:
            student.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            if ck.get("loss") is not None:
                loss_fn.load_state_dict(ck["loss"])
            if ema is not None and ck.get("ema") is not None:
                ema.state = {k: v.to(device) for k, v in ck["ema"].items()}
            if wa is not None and ck.get("weight_average") is not None:
                wa.load_state_dict(ck["weight_average"], device)
            if hard is not None and ck.get("hard") is not None:
                hard.load_state_dict(ck["hard"])
            history, start = ck["history"], ck["epoch"]
            best_acc, best_epoch = ck["best_val_acc"], ck["best_epoch"]

    train_ds = _Indexed(bundle.train)
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100003 + epoch)  # augmentation noise of this epoch
        if wa is not None:
            wa.train_mode(student)  # BatchNorm in eval mode under --weight-average-bn frozen
        else:
            student.train()
        loss_fn.train()
        sums: dict[str, float] = {}
        n_seen = 0
        # images augmented, of them kept (the teacher still right), and the augmentor's
        # teacher-student disagreement summed over its images
        hard_counts = [0.0, 0.0, 0.0]
        train_loader = epoch_loader(train_ds, cfg.batch_size, world, cfg.seed, epoch)
        for step, (x, y, idx) in enumerate(train_loader):
            x = x.to(device, non_blocking=True)
            target = torch.as_tensor(y).to(device) if bundle.labeled else None
            soft = None
            if mixup is not None:
                g = step_generator(cfg.seed, epoch, step, world.rank)
                x, soft = mixup(x, target, bundle.num_classes, g)
                target = soft.argmax(dim=1) if soft is not None else None
            elif hard is not None:
                g = step_generator(cfg.seed, epoch, step, world.rank)
                x, done = hard(x, target, teacher, student, g, world.size)
                hard_counts[0] += done.augmented
                hard_counts[1] += done.kept
                hard_counts[2] += done.disagreement * done.augmented
            logits_t, feat_t, emb_t = teacher_out(x, idx)
            stages_t = t_taps.stages() if "teacher_stages" in needs else None
            with torch.autocast(
                device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
            ):
                logits_s, feat_s, emb_s = s_taps.run(x)
                stages_s = s_taps.stages()
                batch = KDBatch(
                    logits_s.float(),
                    logits_t.float(),
                    target,
                    feat_s=feat_s.float() if feat_s is not None else None,
                    feat_t=feat_t.float() if feat_t is not None else None,
                    emb_s=emb_s.float() if emb_s is not None else None,
                    emb_t=emb_t.float() if emb_t is not None else None,
                    progress=epoch + (step + 1) / steps_per_epoch,
                    stages_s=[f.float() for f in stages_s] if stages_s is not None else None,
                    target_soft=soft,
                    stages_t=[f.float() for f in stages_t] if stages_t is not None else None,
                )
                terms = loss_fn(batch)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                bad = [k for k, v in terms.items() if not torch.isfinite(v)]
                if not torch.isfinite(logits_t).all():
                    where = " (the teacher's outputs are not finite: check the teacher file)"
                else:
                    layer = first_nonfinite_module(student, x)
                    where = f" (first non-finite output: layer {layer})" if layer else ""
                raise StageError(
                    f"training diverged at epoch {epoch + 1}, step {step + 1}",
                    value=f"{', '.join(bad)} is not finite{where}",
                    fix=f"lower the learning rate (now {cfg.lr}); last good checkpoint {last_path}",
                )
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if world.size > 1:  # loss adapters are outside DDP: average their gradients
                for p in loss_fn.parameters():
                    if p.grad is not None:
                        torch.distributed.all_reduce(p.grad)
                        p.grad /= world.size
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            sched.step()
            if ema is not None:
                ema.update(student)
            if wa is not None:
                wa.update(student, epoch * steps_per_epoch + step)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * len(x)
            n_seen += len(x)
            if on_step and world.main:
                on_step(epoch, step + 1, steps_per_epoch)
        keys = sorted(sums)
        reduced = world.sum([sums[k] for k in keys] + [float(n_seen)], device)
        sums, n_seen = dict(zip(keys, reduced[:-1], strict=True)), reduced[-1]
        if hard is not None:
            hard_counts = world.sum(hard_counts, device)
        averaged = ema.swapped_in(student) if ema is not None else None
        if wa is not None and wa.state is not None:
            bn_data = (x.to(device) for x, _ in loader(bundle.train, 256))
            averaged = wa.swapped_in(student, bn_data)
        if averaged is not None:
            with averaged:
                val_acc, _ = evaluate_torch(student, bundle.val)
                kept_state = {k: v.detach().clone() for k, v in student.state_dict().items()}
        else:
            val_acc, _ = evaluate_torch(student, bundle.val)
            kept_state = student.state_dict()
        record = {
            "epoch": epoch + 1,
            **{k: v / n_seen for k, v in sums.items()},
            "val_acc": val_acc,
            "lr": sched.get_last_lr()[0],
            "seconds": time.perf_counter() - t0,
        }
        if hard is not None:  # the share of the augmented images the teacher was still right on
            record["hard_kept"] = hard_counts[1] / max(1.0, hard_counts[0])
            record["hard_disagreement"] = hard_counts[2] / max(1.0, hard_counts[0])
        history.append(record)
        extra = extra_state() if extra_state else None
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch + 1
        if world.main and best_epoch == epoch + 1:
            with atomic_path(best_path) as tmp:
                torch.save(
                    {
                        "model": kept_state,
                        "epoch": epoch + 1,
                        "val_acc": val_acc,
                        "extra": extra,
                        "key": key,
                        "ema": ema is not None,
                        "weight_average": wa is not None and wa.state is not None,
                    },
                    tmp,
                )
        if world.main:
            _save_last(
                last_path,
                {
                    "model": student.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "loss": loss_fn.state_dict(),
                    "ema": ema.state if ema is not None else None,
                    "weight_average": wa.state_dict() if wa is not None else None,
                    "hard": hard.state_dict() if hard is not None else None,
                    "epoch": epoch + 1,
                    "history": history,
                    "best_val_acc": best_acc,
                    "best_epoch": best_epoch,
                    "extra": extra,
                    "key": key,
                },
            )
        world.barrier()  # every rank sees this epoch's checkpoint before going on
        if on_epoch and world.main:
            on_epoch(record)
    if isinstance(wa, Swad):  # SWAD's model is the phase's result, as the official code's
        wa.finish()
        loss_facts["weight_average"] = wa.facts()
        if wa.state is None:
            say(f"SWAD's window never opened in {len(wa.losses)} segments (the validation loss "
                "kept falling): the best checkpoint is the plain one")  # fmt: skip
        else:
            bn_data = (x.to(device) for x, _ in loader(bundle.train, 256))
            with wa.swapped_in(student, bn_data):
                best_acc, _ = evaluate_torch(student, bundle.val)
                best_epoch = cfg.epochs
                if world.main:
                    with atomic_path(best_path) as tmp:
                        torch.save({"model": student.state_dict(), "epoch": cfg.epochs,
                                    "val_acc": best_acc, "extra": extra_state() if extra_state
                                    else None, "key": key, "ema": False,
                                    "weight_average": True, "swad": wa.facts()}, tmp)  # fmt: skip
            say(f"SWAD: segments {wa.opened_at + 1}-{wa.closed_at + 1} of {len(wa.losses)} "
                f"averaged ({wa.n}); val {best_acc:.2f}%, kept as the best checkpoint")
        world.barrier()
    s_taps.remove()
    t_taps.remove()
    layers = {"student": s_taps.layer, "teacher": t_taps.layer} if s_taps.layer else {}
    return TrainResult(
        best_path, last_path, history, best_acc, best_epoch, start, teacher_out.mode, layers,
        loss_facts,
    )  # fmt: skip
