"""Judge a report's budgets, render report.md / report.html / junit.xml, load report.json.

report.json itself is assembled from a run's stage results in edgekd/pipeline/summary.py."""

from __future__ import annotations

from pathlib import Path

from edgekd._io import write_text
from edgekd.config import Budgets
from edgekd.report.schema import Gate, Report, Verdict
from edgekd.report.text import (
    augment_note,
    averaging_note,
    data_line,
    int8_graph,
    md_safe,
    precision_line,
    residual_line,
)

EXIT_OK, EXIT_BUDGET_MISSED = 0, 2


def judge(budgets: Budgets, teacher_acc: float, artifact: dict) -> Verdict:
    """One gate per budget that is set; a missed gate is a result (exit 2), not an error."""
    gates: list[Gate] = []
    if budgets.max_accuracy_drop is not None:
        drop = teacher_acc - artifact["accuracy"]
        gates.append(
            Gate(
                name="accuracy",
                passed=drop <= budgets.max_accuracy_drop,
                value=drop,
                limit=budgets.max_accuracy_drop,
                unit="points",
                detail=f"top-1 {artifact['accuracy']:.2f}% vs teacher {teacher_acc:.2f}%",
            )
        )
    if budgets.latency_ms is not None:
        lat = artifact["latency"][f"p{budgets.percentile}_ms"]
        gates.append(
            Gate(
                name="latency",
                passed=lat <= budgets.latency_ms,
                value=lat,
                limit=budgets.latency_ms,
                unit="ms",
                detail=_latency_label(artifact["latency"], budgets.percentile),
                caution=range_caution(artifact["latency"], budgets.latency_ms),
            )
        )
    if budgets.min_parity is not None and artifact.get("parity") is not None:
        gates.append(
            Gate(
                name="parity",
                passed=artifact["parity"] >= budgets.min_parity,
                value=artifact["parity"],
                limit=budgets.min_parity,
                unit="%",
                detail="top-1 agreement of the shipped ONNX (ONNX Runtime) with its torch model",
            )
        )
    if budgets.max_device_gap is not None and artifact.get("device_accuracy") is not None:
        gap = abs(artifact["accuracy"] - artifact["device_accuracy"])
        gates.append(
            Gate(
                name="device accuracy",
                passed=gap <= budgets.max_device_gap,
                value=gap,
                limit=budgets.max_device_gap,
                unit="points",
                detail=f"top-1 on the device {artifact['device_accuracy']:.2f}% vs "
                f"{artifact['accuracy']:.2f}% in ONNX Runtime here",
            )
        )
    if budgets.max_model_mb is not None:
        gates.append(
            Gate(
                name="size",
                passed=artifact["size_mb"] <= budgets.max_model_mb,
                value=artifact["size_mb"],
                limit=budgets.max_model_mb,
                unit="MB",
                detail="on disk",
            )
        )
    passed = all(g.passed for g in gates)
    return Verdict(passed=passed, exit_code=EXIT_OK if passed else EXIT_BUDGET_MISSED, gates=gates)


def render_all(run_dir: Path, report: dict) -> None:
    """report.md, report.html and junit.xml, all from report.json's content."""
    from edgekd.report.html import render_html
    from edgekd.report.junit import render_junit

    write_text(run_dir / "report.md", render_markdown(report))
    write_text(run_dir / "report.html", render_html(report))
    write_text(run_dir / "junit.xml", render_junit(report))


def load_report(run_dir: str | Path) -> dict:
    """The validated report.json of a finished run (one RunDirError line otherwise)."""
    import json

    from edgekd.errors import RunDirError

    run_dir = Path(run_dir)
    path = run_dir / "report.json"
    if not path.is_file():
        raise RunDirError(
            "no report.json in the run directory",
            value=str(run_dir),
            fix="pass the --out folder of a finished edgekd compress run",
        )
    try:
        return Report.model_validate(json.loads(path.read_text())).model_dump(mode="json")
    except Exception as e:
        raise RunDirError(
            "report.json does not match the report schema",
            value=str(path),
            fix=" ".join(str(e).split())[:200],
        ) from None


def quant_summary(report: dict, top: int = 20) -> dict:
    """The quantization story of a run: calibration, PTQ/QAT, the per-layer sensitivity
    ranking, layers kept in float, parity of each export, lint and float Conv/Gemm left."""
    q = report["quantization"]
    return {
        "student": report["student"]["name"],
        "graph": int8_graph(q),
        "method": q.get("method"),
        "percentile": q.get("percentile"),
        "calib_size": q.get("calib_size"),
        "ptq_val_acc": q.get("ptq_val_acc"),
        "qat_val_acc": q.get("qat_val_acc"),
        "kept": q.get("kept"),
        "float_layers": q.get("float_layers") or [],
        "mixed_val_acc": q.get("mixed_val_acc"),
        "residual_adds": q.get("residual_adds"),
        "residual_line": residual_line(q),
        "precision_line": precision_line(report["export"]),
        "sensitivity": (q.get("sensitivity") or [])[:top],
        "sensitivity_layers": len(q.get("sensitivity") or []),
        "parity": report["parity"],
        "float_conv_gemm_left": report["export"].get("float_conv_gemm_left"),
        "lint": report["export"].get("lint"),
        "shipped": report["artifact"]["precision"],
        "parity_gate": next(
            (g for g in report["verdict"]["gates"] if g["name"] == "parity"), None
        ),  # the shipped artifact's agreement against --min-parity
    }


def regenerate(run_dir: str | Path) -> dict:
    """Re-render md/html/junit from an existing report.json (`edgekd report RUN_DIR`)."""
    run_dir = Path(run_dir)
    report = load_report(run_dir)
    render_all(run_dir, report)
    return report


def _lat(m: dict) -> str:
    la = m["latency"]
    return f"{la['p50_ms']:.3f} / {la['p90_ms']:.3f} / {la['p99_ms']:.3f}"


def _sensitivity_lines(r: dict) -> str:
    sens = r["quantization"].get("sensitivity") or []
    if not sens:
        return ""
    q = r["quantization"]
    rows = "\n".join(
        f"| {i + 1} | `{s['layer']}` | {s['kl']:.2e} |" for i, s in enumerate(sens[:10])
    )
    kept = ""
    if q.get("float_layers"):
        kept = (
            f"\nKept in higher precision to meet the accuracy budget: "
            f"{', '.join(q['float_layers'])} (fake-quant val {q['mixed_val_acc']:.2f}%).\n"
        )
    return (
        "**Quantization sensitivity** (KL of the output when only that layer is INT8, on "
        "the calibration images; top 10):\n\n| rank | layer | KL |\n|---|---|---|\n"
        + rows
        + "\n"
        + kept
    )


def _lint_line(r: dict) -> str:
    lint = r["export"].get("lint") or {}
    if not lint:
        return ""
    parts = [
        f"{k}: {v['errors']} error(s), {v['warnings']} warning(s)"
        + (f" ({', '.join(v['rules'])})" if v["rules"] else "")
        for k, v in lint.items()
    ]
    return "**TensorRT lint** (`edgekd lint`): " + "; ".join(parts) + ".\n"


def range_caution(lat: dict, budget: float) -> str | None:
    """ "may miss" / "may meet" when a predicted latency's range holds the budget."""
    band = lat.get("range_ms")
    if lat["measured"] or not band or not band[0] <= budget < band[1]:
        return None
    verb = "may miss" if lat["p50_ms"] <= budget else "may meet"
    share = f"{lat['range_coverage']:.0%} of" if lat.get("range_coverage") else "the"
    return (
        f"{verb} it: the budget {budget:g} ms lies inside the predicted range "
        f"{band[0]:.3g}-{band[1]:.3g} ms (which held {share} published figures the cost "
        "model was not fitted on); measure on the device (--device) to be sure"
    )


def _latency_label(lat: dict, percentile: int) -> str:
    if not lat["measured"]:
        return f"predicted, {lat['runtime'].removeprefix('predicted: ')}"
    return f"p{percentile} measured at {lat['threads']} thread(s)"


def _student_lines(r: dict) -> list[str]:
    """How the student was chosen, when a search chose it (--student auto|search)."""
    pick = r["student"].get("search")
    if not pick:
        return []
    return [
        f"**Why this student**: `{r['student']['name']}` by the student search "
        f"(--student {pick.get('mode', 'search')}): {pick.get('how', '')}. Every candidate: "
        f"`{pick.get('candidates_file', 'search/candidates.json')}`.",
        "",
    ]


def _device_lines(r: dict) -> list[str]:
    """The device reached with --remote: accuracy there, its facts, a clock warning."""
    art = r["artifact"]
    if art.get("device_accuracy") is None:
        return []
    lines = [
        f"**On the device** ({art.get('device_runtime')}): top-1 {art['device_accuracy']:.2f}% "
        f"vs {art['accuracy']:.2f}% in ONNX Runtime here, agreement "
        f"{art.get('device_agreement', 0):.2f}%.",
        "",
    ]
    facts = r.get("device") or {}
    if facts.get("jetson"):
        lines += [
            f"Device: {facts.get('model')}, L4T {facts.get('l4t')}, power mode "
            f"{facts.get('power_mode')}.",
            "",
        ]
        if facts.get("clocks_fixed") is False:
            lines += [
                "**Warning**: the GPU clocks were not fixed (`sudo jetson_clocks`), so these "
                "timings vary from run to run.",
                "",
            ]
    return lines


def _loss_args(r: dict) -> str:
    args = r["distill"].get("loss_args") or {}
    return ", ".join(f"{k}={v}" for k, v in args.items()) or "defaults"


def render_markdown(r: dict) -> str:
    """report.md: verdict, budgets, teacher vs student table, selection, parity, environment.

    Every string from the report is escaped first (md_safe): a class or folder name holding
    `<script>` or a newline stays text on its line."""
    r = md_safe(r)
    v = r["verdict"]
    lines = [
        f"# edgekd report — {'PASS' if v['passed'] else 'BUDGET MISSED'}",
        "",
        f"Target `{r['target']}` ({r['runtime']}); latency {r['latency_source']}"
        + (
            f", batch 1, {r['artifact']['latency']['threads']} thread(s), "
            f"{r['artifact']['latency']['warmup']} warm-up + {r['artifact']['latency']['iters']} "
            "timed runs."
            if r["artifact"]["latency"]["measured"]
            else " (p50 = p90 = p99: a prediction has no spread)."
        ),
        "",
        data_line(r["data"]),
        "",
        *[f"**Warning**: {w}." for w in r.get("warnings") or []],
        *([""] if r.get("warnings") else []),
        "| gate | value | limit | result |",
        "|---|---|---|---|",
    ]
    for g in v["gates"]:
        lines.append(
            f"| {g['name']} ({g['detail']}) | {g['value']:.3f} {g['unit']} | "
            f"{g['limit']} {g['unit']} | {'pass' if g['passed'] else 'FAIL'} |"
        )
    if not v["gates"]:
        lines.append("| (no budgets set) | | | |")
    lines += [
        "",
        "| model | precision | top-1 % | agreement % | p50 / p90 / p99 ms | size MB |",
        "|---|---|---|---|---|---|",
        f"| teacher | {r['teacher']['precision']} | {r['teacher']['accuracy']:.2f} | — | "
        f"{_lat(r['teacher'])} | {r['teacher']['size_mb']:.2f} |",
    ]
    for p, m in r["variants"].items():
        mark = " (shipped)" if p == r["artifact"]["precision"] else ""
        lines.append(
            f"| {r['student']['name']}{mark} | {p} | {m['accuracy']:.2f} | "
            f"{m['agreement']:.2f} | {_lat(m)} | {m['size_mb']:.2f} |"
        )
    weights = {p: m.get("weights") for p, m in r["variants"].items() if m.get("weights")}
    if weights:
        lines += ["", "**Weights**: " + "; ".join(f"{p}: {w}" for p, w in weights.items()) + "."]
    mixed = augment_note(r) + averaging_note(r)
    lines += [
        "",
        f"**Artifact**: `{r['artifact']['path']}` ({r['artifact']['precision']}, "
        f"sha256 `{r['artifact']['sha256'][:16]}…`), "
        f"{r['speedup_vs_teacher_p90']:.1f}x faster than the teacher at p90, "
        f"accuracy drop {r['accuracy_drop']:.2f} points.",
        "",
        f"**Distillation**: {r['distill'].get('loss') or 'kd'} loss ({_loss_args(r)}), "
        f"teacher {r['distill'].get('teacher_cache') or 'live'}{mixed}; accuracy is "
        f"{r['data'].get('accuracy_metric', 'top-1 accuracy on the labeled val set')}.",
        "",
        *_student_lines(r),
        f"**Why this precision**: {r['selection_reason']}.",
        "",
        *_device_lines(r),
        "**Parity** (ONNX Runtime vs torch on val): "
        + "; ".join(
            f"{p}: top-1 agreement {x['top1_agreement']:.2f}%, max |diff| {x['max_abs_diff']:.2e}"
            for p, x in r["parity"].items()
        ),
        "",
        "**INT8 fusion in ONNX Runtime** (float Conv/Gemm left after ORT's graph optimizations; "
        "0 = every one runs as an integer kernel): "
        + ", ".join(f"{p}: {n}" for p, n in r["export"].get("float_conv_gemm_left", {}).items())
        + ". `int8` is Model Optimizer's Q/DQ graph (for TensorRT); `int8-ort` is ONNX "
        "Runtime's Q/DQ layout (BatchNorm folded, DQ -> Conv -> Q)."
        + (f" {precision_line(r['export'])}." if precision_line(r["export"]) else ""),
        "",
        f"**Quantization**: {int8_graph(r['quantization'])}, "
        f"{r['quantization'].get('method')} calibration on "
        f"{r['quantization'].get('calib_size')} images, PTQ val "
        f"{r['quantization'].get('ptq_val_acc', float('nan')):.2f}%"
        + (
            f", QAT val {r['quantization']['qat_val_acc']:.2f}%"
            if "qat_val_acc" in r["quantization"]
            else ""
        )
        + f" (torch fake-quant); {r['quantization'].get('kept', 'ptq').upper()} weights exported."
        + (f" {line[0].upper()}{line[1:]}." if (line := residual_line(r["quantization"])) else ""),
        "",
        _lint_line(r),
        _sensitivity_lines(r),
        "**Environment**: " + ", ".join(f"{k} {val}" for k, val in r["environment"].items()),
        "",
    ]
    return "\n".join(lines)
