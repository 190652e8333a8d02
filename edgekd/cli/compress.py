"""`edgekd compress`: teacher in, validated artifact and report out; exit 0 / 2 / 1."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli._common import (
    DEFAULT_TRTEXEC,
    Debug,
    FewShotEpochs,
    MaxTrain,
    Normalize,
    Quiet,
    RemotePython,
    SshOptions,
    Trtexec,
    guarded,
)

HELP = """Compress a trained classifier for a target device and check it against the budgets.

Chains distillation (--kd-loss, default KD + cross-entropy), INT8 quantization-aware
training of the graph the target runs (ONNX Runtime's Q/DQ graph, or NVIDIA Model Optimizer's
for TensorRT), ONNX export, the target's runtime build and validation of the built artifact.
Exit code 0 = budgets met, 2 = artifact produced but a budget missed, 1 = bad input or failure.
"""


# options that steer the command itself, not the run (not recipe keys)
CLI_ONLY = ("config", "print_config", "ci", "verbose", "quiet", "debug", "ctx")


def compress_command(
    teacher: Annotated[
        str | None,
        typer.Argument(
            help="Teacher: TorchScript file, torch.export .pt2, state dict (.pt), or timm:NAME "
            "(or teacher: in --config)."
        ),
    ] = None,
    data: Annotated[
        str,
        typer.Option(
            help="digits or fashion-mnist[:PATH] (built-in), a folder with train/ and val/ "
            "class folders (or unlabeled images: label-free KD), or pkg.module:fn."
        ),
    ] = "digits",
    target: Annotated[str, typer.Option(help="Target profile name or YAML path.")] = "host",
    student: Annotated[
        str,
        typer.Option(
            help="Student: a timm model name; auto (the student search: the candidates of "
            "`edgekd search` within the latency budget, or with at most 1/16 of the teacher's "
            "parameters when there is none, ranked without training, then the top 3 by DisWOT "
            "and by parameter count distilled for --few-shot-epochs: the best val accuracy "
            "wins; the fastest when none fits); or search (ranked by DisWOT alone unless "
            "--few-shot-k is given; none within the budget is an error); or same (the "
            "teacher's own architecture, for Born-Again with --generations)."
        ),
    ] = "auto",
    generations: Annotated[
        int,
        typer.Option(
            help="Born-Again distillation: train this many generations of the student, each "
            "taught by the last (the first by the teacher); the last one is quantized and "
            "shipped."
        ),
    ] = 1,
    born_again_teacher: Annotated[
        str,
        typer.Option(
            help="Born-Again: each generation learns from the last one (last), or from the "
            "averaged prediction of all earlier generations (ensemble; needs 3+ generations)."
        ),
    ] = "last",
    few_shot_k: Annotated[
        int | None,
        typer.Option(
            help="With --student auto or search: how many to nominate per ranking (DisWOT, "
            "parameter count) for the few-shot runs [default: 3 for auto, 0 for search]; 0 "
            "picks the top DisWOT score without training.",
            show_default=False,
        ),
    ] = None,
    few_shot_epochs: FewShotEpochs = 2,
    out: Annotated[Path, typer.Option(help="Run directory for artifacts and reports.")] = Path(
        "runs/edgekd"
    ),
    arch: Annotated[
        str | None,
        typer.Option(help="timm architecture of a plain state-dict teacher, e.g. resnet18."),
    ] = None,
    arch_args: Annotated[
        str | None,
        typer.Option(
            "--arch-args",
            help="timm keyword arguments of --arch, e.g. patch_size=8,embed_dim=192 (a ViT "
            "trained at a small size; models with an img_size are built at --input-shape).",
        ),
    ] = None,
    input_shape: Annotated[
        str | None,
        typer.Option(help="Input shape C,H,W (default: from the teacher checkpoint or the data)."),
    ] = None,
    max_train: MaxTrain = None,
    normalize: Normalize = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(help="Allow a fully pickled nn.Module teacher (runs code from the file)."),
    ] = False,
    epochs: Annotated[int, typer.Option(help="Distillation epochs.")] = 20,
    qat_epochs: Annotated[
        int,
        typer.Option(help="Quantization-aware training epochs after calibration (0 = PTQ only)."),
    ] = 2,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, one-cycle).")] = 1e-2,
    qat_lr: Annotated[float, typer.Option(help="QAT learning rate (cosine to 0).")] = 1e-4,
    mixed_precision: Annotated[
        bool,
        typer.Option(
            "--mixed-precision/--no-mixed-precision",
            help="Keep blocks of the INT8 graph in float where that is faster: float/INT8 "
            "cuts timed on this machine, or costed by the target's cost model (and its "
            "measured layer table) for a target elsewhere.",
        ),
    ] = True,
    learn_ranges: Annotated[
        bool,
        typer.Option(
            "--learn-ranges",
            help="QAT learns the activation scales (LSQ) instead of keeping the calibrated ones "
            "(ONNX Runtime targets; TensorRT targets keep calibrated ranges).",
        ),
    ] = False,
    kd_loss: Annotated[
        str,
        typer.Option(
            help="Distillation loss, e.g. kd, dkd, ofa, fitnet, or ce (labels only); "
            "`edgekd losses` lists every one with its arguments."
        ),
    ] = "kd",
    kd_args: Annotated[
        str | None,
        typer.Option(
            help="Arguments of the KD loss: comma-separated key=value pairs, e.g. beta=8."
        ),
    ] = None,
    qat_kd_loss: Annotated[
        str | None,
        typer.Option(
            help="Distillation loss of the QAT phase (default: --kd-loss), e.g. qfd: L2 to the "
            "teacher's quantized feature."
        ),
    ] = None,
    qat_kd_args: Annotated[
        str | None, typer.Option(help="Arguments of --qat-kd-loss: key=value pairs.")
    ] = None,
    temperature: Annotated[
        float | None, typer.Option(help="KD temperature T (shorthand for --kd-args temperature=T).")
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(help="The loss's alpha (for kd: weight of the KD term, 1 - alpha on CE)."),
    ] = None,
    augment: Annotated[
        bool,
        typer.Option(
            help="Random augmentation of training images; --no-augment makes the "
            "transform deterministic, so the teacher's outputs are computed once."
        ),
    ] = True,
    kd_augment: Annotated[
        str,
        typer.Option(
            help="Mix the training batches as MIX-KD does: mixup (partial: part of each batch "
            "stays unmixed) or mixup-full; or hard (HARD: a learned affine augmentor finds "
            "images teacher and student disagree on, kept where the teacher stays right); "
            "none to leave them. The teacher then runs live."
        ),
    ] = "none",
    hard_fraction: Annotated[
        float, typer.Option(help="--kd-augment hard: this fraction of each batch is augmented.")
    ] = 0.5,
    mixup_beta: Annotated[
        float, typer.Option(help="Mixup weights are drawn from Beta(b, b).")
    ] = 1.0,
    mixup_unmixed: Annotated[
        float,
        typer.Option(
            help="Partial mixup: this fraction of the batch size is drawn (with replacement) "
            "to stay unmixed; 0.9 leaves about 41% of a 64-image batch mixed."
        ),
    ] = 0.9,
    teacher_cache: Annotated[
        str,
        typer.Option(help="auto (cache when the transform is deterministic), memory, disk or off."),
    ] = "auto",
    optimizer: Annotated[str, typer.Option(help="adamw or sgd (momentum 0.9, Nesterov).")] = (
        "adamw"
    ),
    schedule: Annotated[
        str,
        typer.Option(help="Learning-rate schedule: onecycle (15% warm-up then cosine) or cosine."),
    ] = "onecycle",
    warmup_epochs: Annotated[
        float, typer.Option(help="Linear warm-up epochs before the cosine schedule.")
    ] = 0.0,
    ema: Annotated[
        float, typer.Option(help="EMA decay of the student's weights, e.g. 0.999 (0 = off).")
    ] = 0.0,
    grad_clip: Annotated[float, typer.Option(help="Clip the gradient norm (0 = off).")] = 0.0,
    weight_average: Annotated[
        str | None,
        typer.Option(
            help="Average the student's weights uniformly (WAKD) from this fraction of the "
            "distillation steps on, e.g. 0.1, or over SWAD's loss-driven window (swad); the "
            "average is validated, kept and shipped."
        ),
    ] = None,
    swad_args: Annotated[
        str | None,
        typer.Option(
            help="--weight-average swad: n_converge=3,n_tolerance=6,tolerance_ratio=1.3 (the "
            "official configs) and frequency=STEPS per segment (default: a fifth of an epoch)."
        ),
    ] = None,
    weight_average_bn: Annotated[
        str,
        typer.Option(
            help="BatchNorm under --weight-average: recompute (the averaged weights' statistics, "
            "one pass over the training images) or frozen (eval mode all phase, as the "
            "official code: for a student that starts trained)."
        ),
    ] = "recompute",
    student_layer: Annotated[
        str | None,
        typer.Option(help="Student module tapped by feature losses (default: last stage >= 2x2)."),
    ] = None,
    teacher_layer: Annotated[
        str | None,
        typer.Option(help="Teacher module tapped by feature losses (default: last stage >= 2x2)."),
    ] = None,
    calib_size: Annotated[int, typer.Option(help="Calibration images drawn from train.")] = 256,
    calib: Annotated[
        str,
        typer.Option(
            help="Activation calibration: max, entropy, percentile, or a recipe YAML "
            "from calibration/."
        ),
    ] = "max",
    calib_percentile: Annotated[
        float, typer.Option(help="Percentile for --calib percentile.")
    ] = 99.99,
    seed: Annotated[int, typer.Option(help="Random seed (runs repeat on the CPU).")] = 0,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads for latency.")] = 1,
    device: Annotated[
        str,
        typer.Option(
            help="Training device: auto (a GPU when one is visible), cpu, cuda or cuda:N; "
            "user@host[:port] means --remote user@host (training then runs here, auto)."
        ),
    ] = "auto",
    nproc_per_node: Annotated[
        int,
        typer.Option(
            help="Distill with N processes per node under torchrun (DDP; NCCL on GPUs, gloo "
            "on CPUs). The batch size is the global batch."
        ),
    ] = 1,
    nnodes: Annotated[int, typer.Option(help="Nodes of a multi-node torchrun job.")] = 1,
    rdzv_endpoint: Annotated[
        str | None, typer.Option(help="host:port of the rendezvous for --nnodes > 1.")
    ] = None,
    remote: Annotated[
        str | None,
        typer.Option(
            help="Validate on the target device over SSH, user@host or user@host:port: "
            "TensorRT engines "
            "are built and timed there with trtexec, CPU targets run ONNX Runtime there; the "
            "artifact's accuracy is measured there too."
        ),
    ] = None,
    ssh_option: SshOptions = None,
    trtexec: Trtexec = DEFAULT_TRTEXEC,
    remote_python: RemotePython = "python3",
    latency_warmup: Annotated[
        int, typer.Option(help="Untimed runs before latency is measured.")
    ] = 50,
    latency_iters: Annotated[
        int, typer.Option(help="Timed runs per latency measurement (batch 1).")
    ] = 300,
    latency_budget_ms: Annotated[
        float | None,
        typer.Option(help="Latency budget in ms at p90 (batch 1); default from the target."),
    ] = None,
    max_accuracy_drop: Annotated[
        float | None,
        typer.Option(help="Largest top-1 drop vs the teacher, in points; default from the target."),
    ] = None,
    max_model_mb: Annotated[float | None, typer.Option(help="Largest artifact size in MB.")] = None,
    max_device_gap: Annotated[
        float | None,
        typer.Option(
            help="Largest top-1 difference (points) between the artifact on the device "
            "(--remote) and in ONNX Runtime here (default 1.0)."
        ),
    ] = None,
    min_parity: Annotated[
        float | None,
        typer.Option(
            help="Smallest top-1 agreement (%) of the shipped ONNX in ONNX Runtime with its torch "
            "model: a gate like the budgets, and a variant below it is not shipped while "
            "another passes [default: 95]."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue a run in --out: skip finished stages whose inputs are unchanged."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            help="Start over in an --out that holds an earlier run (removes its outputs)."
        ),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Recipe YAML with the same keys as these flags (underscores or dashes); flags "
            "given on the command line win."
        ),
    ] = None,
    print_config: Annotated[
        bool, typer.Option(help="Print the effective configuration (a valid recipe) and exit.")
    ] = False,
    ci: Annotated[
        bool,
        typer.Option(
            help="CI mode: no interactive progress, a compact summary; junit.xml is written to "
            "the run directory (as always). Exit 0 / 2 / 1."
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also show third-party warnings.")
    ] = False,
    quiet: Quiet = False,
    debug: Debug = False,
    ctx: typer.Context = None,
) -> None:
    values = {k: v for k, v in locals().items() if k not in CLI_ONLY}
    on_command_line = {k for k in values if _from_command_line(ctx, k)}

    def body() -> None:
        import yaml

        from edgekd.cli.progress import RichReporter
        from edgekd.cli.recipe import effective_values
        from edgekd.config import Budgets, CompressConfig, build_config
        from edgekd.errors import ConfigError
        from edgekd.targets import get_target

        if verbose and quiet:
            raise ConfigError(
                "--verbose and --quiet contradict each other", fix="pass one of them"
            )
        merged = effective_values(values, on_command_line, config)
        if print_config:
            sys.stdout.write(
                yaml.safe_dump(
                    {
                        k: (
                            str(v)
                            if isinstance(v, Path)
                            else list(v)
                            if isinstance(v, tuple)
                            else v
                        )
                        for k, v in merged.items()
                    },
                    sort_keys=False,
                )
            )
            return
        if not merged.get("teacher"):
            raise ConfigError(
                "no teacher given",
                fix="pass TEACHER (a file or timm:NAME) or set teacher: in --config",
            )
        given = {
            k: merged.pop(k)
            for k in (
                "latency_budget_ms",
                "max_accuracy_drop",
                "max_model_mb",
                "min_parity",
                "max_device_gap",
            )
        }
        prof = get_target(merged["target"])
        overrides = {
            "latency_ms": given["latency_budget_ms"],
            "max_accuracy_drop": given["max_accuracy_drop"],
            "max_model_mb": given["max_model_mb"],
            "min_parity": given["min_parity"],
            "max_device_gap": given["max_device_gap"],
        }
        budgets = build_config(
            Budgets,
            prof.default_budgets.model_dump()
            | {k: v for k, v in overrides.items() if v is not None},
        )
        cfg = build_config(CompressConfig, merged | {"budgets": budgets})
        from edgekd.pipeline.rundir import STAGE_FOLDERS, RunDir

        # a refused --out is refused now, not after torch and the inputs have loaded (only
        # by rank 0 under an outer torchrun: the other ranks never touch the run directory)
        if os.environ.get("RANK", "0") == "0":
            RunDir(cfg.out, STAGE_FOLDERS).precheck(resume=cfg.resume, force=cfg.force)
        from edgekd.pipeline.compress import compress

        reporter = RichReporter(quiet=quiet, interactive=not ci)
        result = compress(cfg, reporter, budgets=budgets)
        if result.follower:  # a rank > 0 under torchrun: rank 0 prints the verdict
            return
        sys.stdout.write(summary_lines(result, compact=ci))
        if result.exit_code:
            raise typer.Exit(result.exit_code)

    guarded(body, debug=debug, verbose=verbose)


def _from_command_line(ctx, name: str) -> bool:
    if ctx is None:
        return True
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def summary_lines(result, compact: bool = False) -> str:
    """The verdict, each gate, the artifact and the report path (one line each)."""
    r = result.report
    v = r["verdict"]
    art = r["artifact"]
    kind = "measured" if art["latency"]["measured"] else "PREDICTED"
    lines = [f"verdict: {'PASS' if v['passed'] else 'BUDGET MISSED'} (exit {result.exit_code})"]
    lines += [
        f"  {g['name']}: {g['value']:.3f} {g['unit']} (limit {g['limit']}) "
        f"{'ok' if g['passed'] else 'MISSED'}"
        + (f" ({g['caution'].split(':')[0]})" if g.get("caution") else "")
        for g in v["gates"]
    ]
    band = art["latency"].get("range_ms")
    kind += f", range {band[0]:.3f}-{band[1]:.3f} ms" if band else ""
    lines.append(
        f"artifact: {result.run_dir / art['path']} ({art['precision']}, "
        f"{r['data'].get('accuracy_split', 'val')} top-1 "
        f"{art['accuracy']:.2f}% vs teacher {r['teacher']['accuracy']:.2f}%, p90 "
        f"{art['latency']['p90_ms']:.3f} ms {kind} = {r['speedup_vs_teacher_p90']:.1f}x faster)"
    )
    lines += [f"warning: {w}" for w in r.get("warnings") or []]
    lines.append(f"report: {result.report_path}")
    if compact:
        lines.append(f"junit: {result.run_dir / 'junit.xml'}")
    else:
        lines.append(f"html: {result.run_dir / 'report.html'}")
    return "\n".join(lines) + "\n"
