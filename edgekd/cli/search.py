"""`edgekd search TEACHER`: rank students for the target's latency budget without training."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli._common import DataSource, Debug, FewShotEpochs, MaxTrain, Normalize, guarded


def search_command(
    teacher: Annotated[str, typer.Argument(help="Teacher file or timm:NAME (as for compress).")],
    data: DataSource = "digits",
    max_train: MaxTrain = None,
    normalize: Normalize = None,
    target: Annotated[str, typer.Option(help="Target profile name or YAML path.")] = "host",
    latency_budget_ms: Annotated[
        float | None,
        typer.Option(help="Drop candidates slower than this (p90 on the host, else predicted)."),
    ] = None,
    families: Annotated[
        list[str] | None, typer.Option("--family", help="Restrict to these families (repeat).")
    ] = None,
    candidate: Annotated[
        list[str] | None,
        typer.Option(help="Explicit candidates: timm names or pkg.module:fn factories (repeat)."),
    ] = None,
    arch: Annotated[str | None, typer.Option(help="Architecture of a state-dict teacher.")] = None,
    arch_args: Annotated[
        str | None,
        typer.Option("--arch-args", help="timm keyword arguments of --arch (patch_size=8,...)."),
    ] = None,
    input_shape: Annotated[str | None, typer.Option(help="C,H,W of one input.")] = None,
    batch_size: Annotated[
        int, typer.Option(help="Images per scoring batch (DisWOT averages 3 batches).")
    ] = 64,
    few_shot_k: Annotated[
        int,
        typer.Option(
            help="Distil the top K by DisWOT and the top K by parameter count briefly; the "
            "best val accuracy wins."
        ),
    ] = 0,
    few_shot_epochs: FewShotEpochs = 2,
    rank_by: Annotated[
        str,
        typer.Option(
            help="Order by edgekd's DisWOT (diswot: 4 random inits x 3 batches, class-by-class "
            "gradient correlation) or the paper code's form (diswot-official: one N(0,1) init, "
            "one batch, per-class inter-channel ICKD). README, Student search."
        ),
    ] = "diswot",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[
        str, typer.Option(help="Where the few-shot runs train: auto, cpu, cuda, cuda:N.")
    ] = "auto",
    nproc_per_node: Annotated[
        int,
        typer.Option(
            help="Spread the few-shot runs over N processes (one candidate each; one GPU per "
            "process when --device is a GPU) under torchrun; `torchrun -m edgekd search` too."
        ),
    ] = 1,
    out: Annotated[Path, typer.Option(help="Where search/candidates.json goes.")] = Path(
        "runs/search"
    ),
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="(the default now) progress on stderr.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress lines: only the table.")
    ] = False,
    debug: Debug = False,
) -> None:
    """Rank candidate students (timm edge families) by training-free proxies within the latency
    budget; DisWOT orders them, NASWOT / SynFlow / grad-norm / params are listed beside it.
    Each candidate and few-shot epoch is reported on stderr as it goes (--quiet: not)."""

    def body() -> None:
        from edgekd.config import CompressConfig, build_config
        from edgekd.distributed import check_gpus, resolve_device, torchrun_launch
        from edgekd.inputs import InputSpec, load_inputs

        launch = torchrun_launch()
        run_device = resolve_device(device)
        if nproc_per_node > 1:
            check_gpus(run_device, nproc_per_node, "--nproc-per-node")
            _relaunch(launch)
        if launch is not None:
            check_gpus(run_device, launch.local_rank + 1, "torchrun LOCAL_RANK + 1 =")
        from edgekd.errors import ConfigError
        from edgekd.models.evaluate import chance_level
        from edgekd.search.search import (
            chosen,
            diswot_source,
            search,
            undecided,
            write_results,
        )
        from edgekd.search.space import candidates
        from edgekd.targets import get_target

        if rank_by not in ("diswot", "diswot-official"):
            raise ConfigError("unknown --rank-by", value=rank_by,
                              fix="use diswot or diswot-official")  # fmt: skip
        cfg = build_config(
            CompressConfig,
            {
                "teacher": teacher,
                "data": data,
                "target": target,
                "arch": arch,
                "arch_args": arch_args,
                "input_shape": input_shape,
                "max_train": max_train,
                "normalize": normalize,
                "augment": False,
                "seed": seed,
            },  # fmt: skip
        )
        prof = get_target(target)
        inputs = load_inputs(InputSpec.from_config(cfg))
        loaded, bundle = inputs.teacher, inputs.data
        names = candidates(families, candidate)
        ranked = search(
            loaded.module,
            bundle,
            prof,
            names,
            latency_budget_ms=latency_budget_ms,
            batch_size=batch_size,
            seed=seed,
            few_shot_k=few_shot_k,
            few_shot_epochs=few_shot_epochs,
            device=run_device,
            progress=None if quiet else (lambda m: sys.stderr.write(m + "\n")),
            teacher_arch=loaded.arch,
            teacher_args=loaded.meta.get("arch_args"),
            rank_by=rank_by.replace("-", "_"),
        )
        if launch is not None and not launch.leader:  # rank 0 writes and prints
            return
        chance = chance_level(bundle.num_classes, len(bundle.val))
        pick = chosen(ranked, chance=chance)
        path = write_results(out / "search", ranked, latency_budget_ms, pick)
        kind = "measured" if ranked and ranked[0].latency_measured else "predicted"
        lines = [
            f"{'rank':>4s} {'candidate':28s} {'params':>9s} {kind + ' ms':>13s} {'diswot':>9s} "
            f"{'official':>9s} {'naswot':>9s} {'synflow':>10s} {'gradnorm':>9s} "
            f"{'few-shot':>8s}"
        ]
        for i, c in enumerate(ranked, 1):
            s = c.scores
            row = f"{i:4d} {c.name:28s} {c.params:9d} {c.latency_ms:13.3f} "
            if s:
                official = s.get("diswot_official")
                row += f"{s['diswot']:9.4f} "
                row += f"{official:9.4f} " if official is not None else f"{'-':>9s} "
                row += (f"{s['naswot']:9.2f} {s['synflow']:10.3g} "
                        f"{s['gradnorm']:9.3f} ")  # fmt: skip
                row += f"{c.few_shot_acc:8.2f}" if c.few_shot_acc is not None else f"{'-':>8s}"
            else:
                row += f"error: {c.error[:40]}" if c.error else c.dropped or "not scored"
            lines.append(row)
        ref = diswot_source(ranked)
        if ref:
            lines.append(f"diswot: against {ref}")
        why = undecided(ranked, chance)
        if why:
            lines.append(f"few-shot: {why}: the DisWOT ranking decides")
        lines.append(f"chosen: {pick.name}; wrote {path} and {path.parent}/pareto.png")
        sys.stdout.write("\n".join(lines) + "\n")

    def _relaunch(launch) -> None:
        """This same search under `python -m torch.distributed.run --nproc-per-node N`."""
        import os
        import subprocess

        from edgekd.errors import ConfigError

        if launch is not None:
            raise ConfigError(
                f"already running under torchrun ({launch.world_size} ranks)",
                value=f"--nproc-per-node {nproc_per_node}",
                fix="drop --nproc-per-node: torchrun started the ranks",
            )
        argv = [teacher, "--data", data, "--target", target, "--batch-size", str(batch_size),
                "--few-shot-k", str(few_shot_k), "--few-shot-epochs", str(few_shot_epochs),
                "--seed", str(seed), "--out", str(out), "--device", device,
                "--rank-by", rank_by]  # fmt: skip
        for flag, value in (("--latency-budget-ms", latency_budget_ms), ("--arch", arch),
                            ("--input-shape", input_shape),
                            ("--max-train", max_train),
                            ("--normalize", normalize)):  # fmt: skip
            if value is not None:
                argv += [flag, str(value)]
        for flag, values in (("--family", families), ("--candidate", candidate)):
            for v in values or []:
                argv += [flag, v]
        argv += ["--quiet"] * quiet + ["--debug"] * debug
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc_per_node}", "-m", "edgekd", "search", *argv]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        raise typer.Exit(subprocess.call(cmd, env=env, stdin=subprocess.DEVNULL))

    guarded(body, debug=debug)
