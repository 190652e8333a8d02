"""One epoch of `edgekd.distill.distill` on a fixed toy problem, in one process or, under
torchrun, on every gloo rank; rank 0 saves the student's weights to OUT/student.pt.

Run by tests/distill/test_ddp.py: the toy student has no batch statistics and no dropout, so
one process and 2 ranks with the same global batch must take the same optimizer steps.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from edgekd.data import DataBundle
from edgekd.distill import TrainConfig, distill

IMAGES, BATCH, CLASSES = 128, 64, 10  # two optimizer steps per epoch


def toy_net(seed: int) -> nn.Module:
    """A conv net without BatchNorm or dropout: its output depends on each image alone."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, CLASSES),
    )  # fmt: skip


def toy_data() -> DataBundle:
    g = torch.Generator().manual_seed(7)
    x = torch.randn(IMAGES, 3, 8, 8, generator=g)
    y = torch.randint(0, CLASSES, (IMAGES,), generator=g)
    train = TensorDataset(x, y)
    val = TensorDataset(x[:32], y[:32])
    return DataBundle("toy", train, val, val, CLASSES, (3, 8, 8), tuple(map(str, range(10))), "toy")


def main(out: str, extras: str = "") -> None:
    """`extras` "mixup": --kd-augment mixup and --weight-average 0 too; "hard": --kd-augment
    hard. With extras every rank saves its own student_rank{r}.pt (and its best weights)."""
    joined = "WORLD_SIZE" in os.environ
    if joined:
        torch.distributed.init_process_group("gloo")
    torch.set_num_threads(1)
    teacher, student = toy_net(0), toy_net(1)
    more = {"mixup": {"kd_augment": "mixup", "weight_average": 0.0},
            "hard": {"kd_augment": "hard"}}.get(extras, {})  # fmt: skip
    cfg = TrainConfig(epochs=1, lr=0.01, batch_size=BATCH, seed=3, loss="kd", **more)
    res = distill(student, teacher, toy_data(), cfg, Path(out))
    rank = torch.distributed.get_rank() if joined else 0
    if extras:
        best = torch.load(res.best_path, weights_only=True)["model"]
        torch.save({"model": student.state_dict(), "best": best, "history": res.history},
                   Path(out) / f"student_rank{rank}.pt")  # fmt: skip
    elif rank == 0:
        world = torch.distributed.get_world_size() if joined else 1
        torch.save({"model": student.state_dict(), "world": world, "history": res.history},
                   Path(out) / "student.pt")  # fmt: skip
    if joined:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
