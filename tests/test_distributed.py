"""edgekd.distributed: one GPU per process is checked before anything starts."""

from __future__ import annotations

import pytest
import torch

from edgekd.distributed import check_gpus
from edgekd.errors import InputError


@pytest.fixture
def one_gpu(monkeypatch):
    """Pretend this machine has exactly one visible GPU (only the counts are consulted)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_more_processes_than_gpus_is_bad_input(one_gpu):
    with pytest.raises(InputError) as e:
        check_gpus("cuda", 2, "--nproc-per-node")
    msg = str(e.value)
    assert "--nproc-per-node 2 with 1 visible GPU(s)" in msg and "--device cpu" in msg


def test_one_process_per_gpu_and_cpu_runs_pass(one_gpu):
    check_gpus("cuda", 1, "--nproc-per-node")
    check_gpus("cuda:0", 1, "--nproc-per-node")
    check_gpus("cpu", 8, "--nproc-per-node")  # gloo processes share the CPU


def test_no_gpu_is_left_to_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_gpus("cuda", 4, "--nproc-per-node")  # resolve_device reports a missing GPU
