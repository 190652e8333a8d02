"""Train the example teacher: a timm resnet18 on the built-in digits data (CPU, about a minute).

    python examples/digits/train_teacher.py --out examples/digits/teacher.pt

The result is an edgekd checkpoint (arch + state dict), which loads without --trust-pickle:

    edgekd compress examples/digits/teacher.pt --data digits --target host --out runs/demo
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from edgekd._io import write_json
from edgekd.data import loader
from edgekd.data.digits import digits_bundle
from edgekd.distill import evaluate_torch
from edgekd.models import save_checkpoint
from edgekd.models.loading import build_timm


def train(arch: str, epochs: int, lr: float, batch_size: int, seed: int) -> tuple:
    torch.manual_seed(seed)
    data = digits_bundle()
    # ViTs (deit_tiny_patch16_224, ...) are built at the data's size: img_size=32
    model, _ = build_timm(arch, data.num_classes, None, data.input_shape)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = math.ceil(len(data.train) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    history = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        torch.manual_seed(seed * 1000 + epoch)
        model.train()
        for x, y in loader(data.train, batch_size, shuffle=True, seed=seed + epoch):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        acc, _ = evaluate_torch(model, data.val)
        history.append({"epoch": epoch + 1, "val_acc": acc, "seconds": time.perf_counter() - t0})
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f} val {acc:.2f}%", flush=True)
    return model, data, history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("teacher.pt"))
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    model, data, history = train(args.arch, args.epochs, args.lr, args.batch_size, args.seed)
    save_checkpoint(args.out, model, args.arch, data.num_classes, data.input_shape)
    summary = {
        "arch": args.arch,
        "val_acc": history[-1]["val_acc"],
        "epochs": args.epochs,
        "seconds": time.perf_counter() - t0,
        "history": history,
    }
    write_json(args.out.with_suffix(".json"), summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "history"}))
    print(f"teacher saved to {args.out}")


if __name__ == "__main__":
    main()
