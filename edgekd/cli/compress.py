"""`edgekd compress`: teacher in, validated artifact and report out; exit 0 / 2 / 1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli._common import Debug, Quiet, guarded

HELP = """Compress a trained classifier for a target device and check it against the budgets.

Chains distillation (KD + cross-entropy), INT8 quantization-aware training (NVIDIA Model
Optimizer), ONNX export, the target's runtime build and validation of the built artifact.
Exit code 0 = budgets met, 2 = artifact produced but a budget missed, 1 = bad input or failure.
"""


def compress_command(
    teacher: Annotated[
        str,
        typer.Argument(
            help="Teacher: TorchScript file, torch.export .pt2, state dict (.pt), or timm:NAME."
        ),
    ],
    data: Annotated[
        str,
        typer.Option(
            help="digits (built-in), a folder with train/ and val/ class folders, or pkg.module:fn."
        ),
    ] = "digits",
    target: Annotated[str, typer.Option(help="Target profile name or YAML path.")] = "host",
    student: Annotated[
        str,
        typer.Option(
            help="Student: any timm model name, or auto (for now: the largest of a fixed list of "
            "mobile models with at most 1/16 of the teacher's parameters; no search yet)."
        ),
    ] = "auto",
    out: Annotated[Path, typer.Option(help="Run directory for artifacts and reports.")] = Path(
        "runs/edgekd"
    ),
    arch: Annotated[
        str | None,
        typer.Option(help="timm architecture of a plain state-dict teacher, e.g. resnet18."),
    ] = None,
    input_shape: Annotated[
        str | None,
        typer.Option(help="Input shape C,H,W (default: from the teacher checkpoint or the data)."),
    ] = None,
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
    temperature: Annotated[float, typer.Option(help="KD temperature T.")] = 4.0,
    alpha: Annotated[
        float, typer.Option(help="Weight of the KD term (1 - alpha weights cross-entropy).")
    ] = 0.9,
    calib_size: Annotated[int, typer.Option(help="Calibration images drawn from train.")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed (runs repeat on the CPU).")] = 0,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads for latency.")] = 1,
    device: Annotated[
        str,
        typer.Option(
            help="Training device: auto (a GPU when one is visible), cpu, cuda or cuda:N."
        ),
    ] = "auto",
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
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    values = {k: v for k, v in locals().items() if k not in ("quiet", "debug")}

    def body() -> None:
        from edgekd.cli.progress import RichReporter
        from edgekd.config import Budgets, CompressConfig, build_config
        from edgekd.pipeline.compress import compress
        from edgekd.targets import get_target

        given = {
            k: values.pop(k) for k in ("latency_budget_ms", "max_accuracy_drop", "max_model_mb")
        }
        prof = get_target(values["target"])
        overrides = {
            "latency_ms": given["latency_budget_ms"],
            "max_accuracy_drop": given["max_accuracy_drop"],
            "max_model_mb": given["max_model_mb"],
        }
        budgets = build_config(
            Budgets,
            prof.default_budgets.model_dump()
            | {k: v for k, v in overrides.items() if v is not None},
        )
        cfg = build_config(CompressConfig, values | {"budgets": budgets})
        result = compress(cfg, RichReporter(quiet=quiet), budgets=budgets)
        r = result.report
        v = r["verdict"]
        art = r["artifact"]
        lines = [
            f"verdict: {'PASS' if v['passed'] else 'BUDGET MISSED'} (exit {result.exit_code})",
            *[
                f"  {g['name']}: {g['value']:.3f} {g['unit']} (limit {g['limit']}) "
                f"{'ok' if g['passed'] else 'MISSED'}"
                for g in v["gates"]
            ],
            f"artifact: {result.run_dir / art['path']} ({art['precision']}, "
            f"top-1 {art['accuracy']:.2f}% vs teacher {r['teacher']['accuracy']:.2f}%, "
            f"p90 {art['latency']['p90_ms']:.3f} ms "
            f"{'measured' if art['latency']['measured'] else 'PREDICTED'} = "
            f"{r['speedup_vs_teacher_p90']:.1f}x faster)",
            f"report: {result.report_path}",
        ]
        sys.stdout.write("\n".join(lines) + "\n")
        if result.exit_code:
            raise typer.Exit(result.exit_code)

    guarded(body, debug=debug)
