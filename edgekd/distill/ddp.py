"""Distillation and QAT under torch.distributed: one process per GPU (NCCL) or per CPU worker
(gloo), launched by torchrun. `edgekd compress --nproc-per-node N` writes a spec and runs

    python -m torch.distributed.run --nproc-per-node N [--nnodes M --rdzv-endpoint H:P] \\
        -m edgekd.distill.ddp SPEC.json

Every rank loads the teacher (replicated, eval mode), the data and the student, then runs
`edgekd.distill.distill`, which shards each epoch with a DistributedSampler seeded by epoch,
averages gradients with DistributedDataParallel, reduces the metrics over ranks, and lets only
rank 0 write checkpoints (and the teacher cache, which the other ranks read). Rank 0 writes the
result next to the spec. Resume works with the same world size (the checkpoint is rank 0's).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch


def launch_command(
    spec_path: Path, nproc_per_node: int, nnodes: int = 1, rdzv_endpoint: str | None = None
) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc_per_node}"]
    if nnodes > 1:
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
    else:
        cmd += ["--standalone"]
    return [*cmd, "-m", "edgekd.distill.ddp", str(spec_path)]


def run_spec(spec: dict, say=None, loaded=None) -> dict | None:
    """This rank's part of the distillation described by `spec` (see pipeline/stages/_phase).
    Joins the process group torchrun describes unless this process is already in one (an
    outer `torchrun -m edgekd compress`), and leaves it only if it joined here. `loaded`: the
    `edgekd.inputs.Inputs` this process already holds (rank 0 in compress), else loaded here
    from the spec's `InputSpec`, the same way compress loaded them."""
    from edgekd._io import write_json
    from edgekd.distill.trainer import TrainConfig, distill
    from edgekd.inputs import InputSpec, load_inputs
    from edgekd.models import build_student

    say = say or (lambda m: print(m, flush=True))
    cuda = spec["device"].startswith("cuda") and torch.cuda.is_available()
    joined_here = not torch.distributed.is_initialized()
    if joined_here:
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    rank = torch.distributed.get_rank()
    try:
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{local}" if cuda else "cpu"
        if cuda:
            torch.cuda.set_device(local)
        inputs = loaded or load_inputs(InputSpec.from_dict(spec["inputs"]))
        teacher, data = inputs.teacher, inputs.data
        torch.manual_seed(spec["seed"])
        student = build_student(spec["student"], data.num_classes, data.input_shape)
        extra_state = None
        if spec.get("init_quantized"):  # QAT: start from the calibrated fake-quant student
            from edgekd.quant import quantizer_state, restore_quantized

            ck = torch.load(spec["init_quantized"], map_location="cpu", weights_only=True)
            student = restore_quantized(student, ck["extra"], ck["model"])

            def extra_state():
                return quantizer_state(student)

        train = TrainConfig(**(spec["train"] | {"device": device}))

        def show(record: dict) -> None:
            losses = ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith("loss"))
            say(f"epoch {record['epoch']}/{train.epochs}: {losses}, val {record['val_acc']:.2f}%")

        res = distill(
            student,
            teacher.module,
            data,
            train,
            spec["ckpt_dir"],
            prefix=spec.get("prefix", ""),
            resume=spec["resume"],
            key=spec["key"],
            extra_state=extra_state,
            on_epoch=show,
            on_message=say,
        )
        out = {
            "best_path": str(res.best_path),
            "last_path": str(res.last_path),
            "history": res.history,
            "best_val_acc": res.best_val_acc,
            "best_epoch": res.best_epoch,
            "resumed_from_epoch": res.resumed_from_epoch,
            "teacher_cache": res.teacher_cache,
            "layers": res.layers,
            "loss_facts": res.loss_facts,
            "world_size": torch.distributed.get_world_size(),
        }
        if rank == 0:
            write_json(spec["result"], out)
        return out
    finally:
        if joined_here:
            torch.distributed.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m edgekd.distill.ddp SPEC.json (under torchrun)\n")
        return 1
    try:
        run_spec(json.loads(Path(args[0]).read_text()))
    except Exception as e:  # one line per failing rank; torchrun reports the exit code
        from edgekd.errors import EdgekdError

        msg = e.one_line() if isinstance(e, EdgekdError) else f"{type(e).__name__}: {e}"
        sys.stderr.write(f"error: {' '.join(str(msg).split())[:400]}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
