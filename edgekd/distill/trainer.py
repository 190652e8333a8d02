"""The distillation loop: student learns from a frozen teacher; checkpoint every epoch, keep best.

Runs repeat exactly on the CPU for a given seed, also across `resume`: the shuffle order and
the augmentation noise of epoch `e` are seeded from (seed, e), not carried in RNG state.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd._io import atomic_path
from edgekd.data import DataBundle, loader
from edgekd.distill.guards import first_nonfinite_module
from edgekd.distill.losses import create_loss
from edgekd.errors import StageError


class FrozenTeacher:
    """The teacher pinned to eval mode with gradients off; callers just call it."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        try:
            module.eval()
        except NotImplementedError:  # torch.export modules are already in inference form
            pass
        for p in module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        return out[0] if isinstance(out, (tuple, list)) else out


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
    schedule: str = "onecycle"  # onecycle (warm-up then anneal) | cosine (anneal only)
    device: str = "cpu"  # where training runs; checkpoints are always loadable on the CPU


@dataclass
class TrainResult:
    best_path: Path
    last_path: Path
    history: list[dict]
    best_val_acc: float
    best_epoch: int
    resumed_from_epoch: int = 0


@torch.no_grad()
def evaluate_torch(model: nn.Module, ds, batch_size: int = 256) -> tuple[float, torch.Tensor]:
    """Top-1 accuracy (percent) and logits (on the CPU) of `model` on dataset `ds`, run on the
    device the model's parameters are on."""
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    logits, labels = [], []
    for x, y in loader(ds, batch_size):
        logits.append(model(x.to(device)).float().cpu())
        labels.append(torch.as_tensor(y))
    out = torch.cat(logits)
    acc = (out.argmax(1) == torch.cat(labels)).float().mean().item() * 100
    return acc, out


def _scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    total = max(1, cfg.epochs * steps_per_epoch)
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total, pct_start=0.15
        )
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)


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
) -> TrainResult:
    """Train `student` against `teacher` on `bundle.train`; validate on `bundle.val` each epoch.

    Args:
        student: the model to train (float, or fake-quantized for QAT).
        teacher: the trained model; pinned to eval mode here.
        cfg: optimiser, schedule and loss settings.
        ckpt_dir: where `{prefix}last.pt` (every epoch) and `{prefix}best.pt` are written.
        resume: continue from `{prefix}last.pt` when its `key` equals `key`.
        key: identifies the inputs of this phase; a checkpoint with another key is not resumed.
        extra_state: returns extra picklable-safe state stored with every checkpoint
            (the quantizer state for QAT).
        on_step: called with (epoch, step, steps_per_epoch) after every step.
        on_epoch: called with each epoch's record.
    """
    ckpt_dir = Path(ckpt_dir)
    last_path, best_path = ckpt_dir / f"{prefix}last.pt", ckpt_dir / f"{prefix}best.pt"
    device = torch.device(cfg.device)
    student.to(device)
    teacher.to(device)
    frozen = FrozenTeacher(teacher)
    loss_fn = create_loss(cfg.loss, **cfg.loss_args)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(bundle.train) / cfg.batch_size)
    sched = _scheduler(opt, cfg, steps_per_epoch)
    history: list[dict] = []
    best_acc, best_epoch, start = -1.0, 0, 0

    if resume and last_path.exists():
        ck = torch.load(last_path, map_location="cpu", weights_only=True)
        if ck.get("key") == key:
            student.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            history, start = ck["history"], ck["epoch"]
            best_acc, best_epoch = ck["best_val_acc"], ck["best_epoch"]

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100003 + epoch)  # augmentation noise of this epoch
        student.train()
        sums: dict[str, float] = {}
        n_seen = 0
        train_loader = loader(bundle.train, cfg.batch_size, shuffle=True, seed=cfg.seed + epoch)
        for step, (x, y) in enumerate(train_loader):
            x, y = x.to(device, non_blocking=True), torch.as_tensor(y).to(device)
            terms = loss_fn(student(x), frozen(x), y)
            loss = sum(terms.values())
            if not torch.isfinite(loss):
                bad = [k for k, v in terms.items() if not torch.isfinite(v)]
                layer = first_nonfinite_module(student, x)
                where = f" (first non-finite output: layer {layer})" if layer else ""
                raise StageError(
                    f"training diverged at epoch {epoch + 1}, step {step + 1}",
                    value=f"{', '.join(bad)} is not finite{where}",
                    fix=f"lower the learning rate (now {cfg.lr}); last good checkpoint {last_path}",
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * len(y)
            n_seen += len(y)
            if on_step:
                on_step(epoch, step + 1, steps_per_epoch)
        val_acc, _ = evaluate_torch(student, bundle.val)
        record = {
            "epoch": epoch + 1,
            **{k: v / n_seen for k, v in sums.items()},
            "val_acc": val_acc,
            "lr": sched.get_last_lr()[0],
            "seconds": time.perf_counter() - t0,
        }
        history.append(record)
        extra = extra_state() if extra_state else None
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch + 1
            with atomic_path(best_path) as tmp:
                torch.save(
                    {
                        "model": student.state_dict(),
                        "epoch": epoch + 1,
                        "val_acc": val_acc,
                        "extra": extra,
                        "key": key,
                    },
                    tmp,
                )
        with atomic_path(last_path) as tmp:
            torch.save(
                {
                    "model": student.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "epoch": epoch + 1,
                    "history": history,
                    "best_val_acc": best_acc,
                    "best_epoch": best_epoch,
                    "extra": extra,
                    "key": key,
                },
                tmp,
            )
        if on_epoch:
            on_epoch(record)
    return TrainResult(best_path, last_path, history, best_acc, best_epoch, start)
