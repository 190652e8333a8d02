"""Train a classifier on labels: the example teachers' recipe (AdamW, one-cycle, label
smoothing, optional random erasing), keeping the epoch with the best val accuracy. On a GPU
when one is present.

Random erasing is Zhong et al., "Random Erasing Data Augmentation" (AAAI 2020, arXiv
1708.04896), Algorithm 1: with probability p, an image gets one rectangle of area
U(0.02, 0.4) x its area and aspect ratio U(0.3, 1/0.3), at a uniform position that keeps it
inside the image, filled with random values. As torchvision's `RandomErasing`, an image for
which 10 draws do not fit is left whole, and the fill is N(0, 1) per element, since the
images are already normalised."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.data import DataBundle, loader
from edgekd.models.evaluate import evaluate_torch


@dataclass(frozen=True)
class SupervisedRecipe:
    epochs: int = 10
    lr: float = 3e-3
    batch_size: int = 64
    weight_decay: float = 0.05
    label_smoothing: float = 0.0
    random_erasing: float = 0.0  # the probability p of erasing a rectangle in each image
    seed: int = 0


@dataclass
class SupervisedResult:
    model: nn.Module  # the best epoch's weights, on the CPU, in eval mode
    best_epoch: int
    best_val_acc: float
    device: str
    history: list[dict] = field(default_factory=list)


def random_erase(
    x: torch.Tensor, p: float, gen: torch.Generator,
    area: tuple[float, float] = (0.02, 0.4), ratio: float = 0.3,
) -> torch.Tensor:  # fmt: skip
    """A copy of the batch `x` (N, C, H, W) with random erasing applied per image (see the
    module docstring); the draws come from `gen` alone."""
    out = x.clone()
    n, c, h, w = x.shape
    for i in range(n):
        if float(torch.rand((), generator=gen)) >= p:
            continue
        for _ in range(10):
            a = float(torch.empty(()).uniform_(*area, generator=gen)) * h * w
            r = float(torch.empty(()).uniform_(ratio, 1 / ratio, generator=gen))
            eh, ew = round(math.sqrt(a * r)), round(math.sqrt(a / r))
            if 0 < eh < h and 0 < ew < w:
                top = int(torch.randint(0, h - eh + 1, (), generator=gen))
                left = int(torch.randint(0, w - ew + 1, (), generator=gen))
                fill = torch.randn((c, eh, ew), generator=gen, dtype=x.dtype)
                out[i, :, top : top + eh, left : left + ew] = fill.to(x.device)
                break
    return out


def train_classifier(
    model: nn.Module,
    data: DataBundle,
    recipe: SupervisedRecipe,
    device: str | None = None,
    log: Callable[[str], None] = print,
) -> SupervisedResult:
    """Cross-entropy training on `data.train`, val accuracy after each epoch; returns the best
    epoch's model. One line per epoch (loss, val, seconds, ETA)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(recipe.seed)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps = math.ceil(len(data.train) / recipe.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.lr, total_steps=recipe.epochs * steps
    )
    best = SupervisedResult(model, 0, -1.0, device)
    best_state = None
    t_start = time.perf_counter()
    for epoch in range(1, recipe.epochs + 1):
        t0 = time.perf_counter()
        torch.manual_seed(recipe.seed * 1000 + epoch)  # the augmentation's draws
        gen = torch.Generator().manual_seed(recipe.seed * 1000 + epoch)  # random erasing's
        model.train()
        loss_sum = n = 0.0
        for x, y in loader(data.train, recipe.batch_size, shuffle=True, seed=recipe.seed + epoch):
            if recipe.random_erasing:
                x = random_erase(x, recipe.random_erasing, gen)
            x, y = x.to(device, non_blocking=True), torch.as_tensor(y).to(device)
            loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(y)
            n += len(y)
        acc, _ = evaluate_torch(model, data.val)
        secs = time.perf_counter() - t0
        best.history.append({"epoch": epoch, "loss": loss_sum / n, "val_acc": acc, "seconds": secs})
        if acc > best.best_val_acc:
            best.best_epoch, best.best_val_acc = epoch, acc
            best_state = copy.deepcopy(model.state_dict())
        eta = (time.perf_counter() - t_start) / epoch * (recipe.epochs - epoch)
        log(f"epoch {epoch}/{recipe.epochs}: loss {loss_sum / n:.3f}, val {acc:.2f}% "
            f"({len(data.val)} val images), {secs:.0f} s, ETA {eta:.0f} s")  # fmt: skip
    model.load_state_dict(best_state)
    best.model = model.cpu().eval()
    return best
