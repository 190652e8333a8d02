"""Running under an outer torchrun: `torchrun --nproc-per-node N -m edgekd compress|search ...`.

torchrun starts the same command once per rank with RANK, WORLD_SIZE, LOCAL_RANK and
MASTER_ADDR/MASTER_PORT set. edgekd then joins one process group (NCCL when the run's device
is a GPU, else gloo) and lets rank 0 lead: it runs the pipeline alone and, for each phase
that scales out (distillation, QAT, the search's few-shot runs), sends the phase to every
rank over a gloo control group; the other ranks follow until rank 0 says it is done. Only rank
0 touches the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

# rank 0 may work alone between phases (teacher export, calibration): followers wait this long
WAIT = timedelta(hours=6)


@dataclass(frozen=True)
class Launch:
    rank: int
    world_size: int
    local_rank: int

    @property
    def leader(self) -> bool:
        return self.rank == 0


def torchrun_launch(env: dict[str, str] | None = None) -> Launch | None:
    """This process's place when an outer torchrun started it with more than one rank."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", "0"))
    except ValueError:
        return None
    if world <= 1 or "MASTER_ADDR" not in env:
        return None
    return Launch(rank, world, local)


def check_gpus(device: str, processes: int, flag: str) -> None:
    """One GPU per process: a GPU run with more processes on a node than it has GPUs is bad
    input (`flag` names what asked for them), raised before anything starts or is written."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return
    n = torch.cuda.device_count()
    if processes > n:
        from edgekd.errors import InputError

        raise InputError(
            "more processes on this node than GPUs (each process trains on its own GPU)",
            value=f"{flag} {processes} with {n} visible GPU(s)",
            fix=f"use at most {n} process(es) per node, or --device cpu",
        )


def resolve_device(spec: str) -> str:
    """`auto` -> cuda when a GPU is visible, else cpu; a CUDA request without a GPU is an error."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        n = torch.cuda.device_count()
        index = int(spec.partition(":")[2] or 0)
        if index >= n:
            from edgekd.errors import InputError

            raise InputError(
                "CUDA device not available",
                value=spec,
                fix=f"this machine has {n} visible GPU(s); use --device cpu or auto",
            )
    return spec


def rank_device(device: str, launch: Launch) -> str:
    """cuda:LOCAL_RANK for a GPU run (one GPU per rank), else the device as given."""
    return f"cuda:{launch.local_rank}" if device.startswith("cuda") else device


_control = None
_joined = False  # whether join() created the default group (then leave() destroys it)


def join(device: str) -> Any:
    """Join the default process group (once) and return the gloo control group."""
    global _control, _joined
    dist = torch.distributed
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=WAIT)
        _joined = True
    if _control is None:
        _control = dist.new_group(backend="gloo", timeout=WAIT)
    return _control


def leave() -> None:
    """Every rank calls this when done: wait for the others, then tear the groups down. A
    process that exits with its groups alive can abort in their destructors."""
    global _control, _joined
    dist = torch.distributed
    if _control is not None and dist.is_initialized():
        dist.barrier(group=_control)
        if _joined:
            dist.destroy_process_group()
        else:
            dist.destroy_process_group(_control)
    _control, _joined = None, False


def send(message: Any) -> Any:
    """Rank 0 sends `message` to every rank; every rank returns it."""
    box = [message]
    torch.distributed.broadcast_object_list(box, src=0, group=_control)
    return box[0]


def gather(value: Any) -> list[Any] | None:
    """Every rank's `value`, in rank order, on rank 0 (None elsewhere)."""
    dist = torch.distributed
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(value, out, dst=0, group=_control)
    return out
