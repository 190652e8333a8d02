"""report.json from a run's typed stage results and its manifest; report/ renders it."""

from __future__ import annotations

from pathlib import Path

from edgekd import __version__
from edgekd._io import write_json
from edgekd.pipeline.context import RunContext, RunResults
from edgekd.pipeline.manifest import Manifest
from edgekd.report.schema import Report
from edgekd.report.writer import judge, render_all


def _data(data) -> dict:
    return {
        "name": data.name,
        "num_classes": data.num_classes,
        "input_shape": data.input_shape,
        "train": len(data.train),
        "val": len(data.val),
        "test": len(data.test) if data.test is not None else None,
        "accuracy_split": data.report_split,
        "fingerprint": data.fingerprint,
        "labeled": data.labeled,
        "accuracy_metric": data.accuracy_metric,
        "skipped_files": len(data.skipped),  # files that are not images, never read
    }


def _with_weights(variants: dict, quant: dict) -> dict:
    """Each variant with the student weights it holds: the float ones are the KD student
    (distill/best.pt); the INT8 ones are those weights calibrated (PTQ) or fine-tuned by QAT,
    whichever the quantize stage kept (issue 25 item 9: they can differ by many points)."""
    kept = str(quant.get("kept", "ptq"))
    if kept.startswith("qat"):
        int8 = (f"QAT: the KD student fine-tuned with fake quantization "
                f"({quant.get('checkpoint', 'distill/qat_best.pt')}), not the float weights")
    else:
        int8 = "PTQ: the KD student's weights (distill/best.pt), calibrated"
    if kept.endswith("+mixed"):
        int8 += f"; layers kept in float: {', '.join(quant.get('float_layers') or [])}"
    out = {}
    for p, m in variants.items():
        w = int8 if p.startswith("int8") else "KD: the distilled student (distill/best.pt)"
        out[p] = {**m, "weights": w}
    return out


def _stages(manifest: Manifest) -> list[dict]:
    reused = manifest.run.get("stages_reused", [])
    return [{"name": s.name, "status": s.status, "wall_s": s.wall_s, "reused": s.name in reused}
            for s in manifest.stages.values()]  # fmt: skip


def _with_figures(report: dict, figures: dict) -> dict:
    """The validate stage's GFLOPs and layer table, where the report shows them."""
    report["teacher"]["gflops"] = figures["teacher_gflops"]
    for p, m in report["variants"].items():
        m["gflops"] = figures["variant_gflops"].get(p)
    report["artifact"]["gflops"] = figures["artifact_gflops"]
    if figures.get("layers") is not None:
        report["layers"] = figures["layers"]
    return report


BEATS_TEACHER_POINTS = 2.0  # a student this far above its teacher is worth a warning


def warnings(report: dict) -> list[str]:
    """Lines for what makes the report's figures doubtful: a student that beats its teacher by
    more than BEATS_TEACHER_POINTS (an undertrained teacher, or images preprocessed unlike
    its training images), latencies that stayed noisy after re-measuring, and a predicted
    latency whose range holds the budget."""
    out = []
    t, a = report["teacher"], report["artifact"]
    if a["accuracy"] - t["accuracy"] > BEATS_TEACHER_POINTS:
        out.append(
            f"the student ({a['accuracy']:.2f}%) beats its teacher ({t['accuracy']:.2f}%) by "
            f"{a['accuracy'] - t['accuracy']:.1f} points: the teacher may be undertrained, or "
            "see its images preprocessed unlike its training images (--normalize for an image "
            "folder); distilling from a better teacher is likely to help"
        )
    named = [("the teacher", t)] + [(f"the student ({p})", m)
                                    for p, m in report["variants"].items()]  # fmt: skip
    for what, m in named:
        if m["latency"].get("noise"):
            out.append(f"the latency of {what} is unreliable: {m['latency']['noise']}")
    gates = (report.get("verdict") or {}).get("gates") or []
    out += [f"the latency budget: {g['caution']}" for g in gates if g.get("caution")]
    return out


def build_report(ctx: RunContext, manifest: Manifest, results: RunResults) -> dict:
    """The report (schema v1) of a finished run: everything in it was measured by a stage."""
    v = results.checked.metrics
    distill, quant, onnx = results.fp32.record, results.int8.record, results.onnx.record
    teacher, art = v["teacher"], v["artifact"]
    searched = results.search.record if results.search is not None else None
    verdict = judge(ctx.budgets, teacher["accuracy"], art)
    report = Report(
        edgekd_version=__version__,
        run_dir=str(ctx.run.root),
        target=ctx.target.name,
        runtime=ctx.target.runtime,
        latency_source=v["latency_source"],
        data=_data(ctx.inputs.data),
        budgets=ctx.budgets.model_dump(),
        verdict=verdict,
        teacher={**teacher, "params": results.teacher.params},
        student={
            "name": distill["student"],
            "params": distill["params"],
            "chosen_by": searched["mode"] if searched else "given",
            # the pick's latency, proxy scores, few-shot accuracy and how it was chosen
            "search": searched,
        },
        variants=_with_weights(v["student"], quant),
        artifact=_with_weights({art["precision"]: art}, quant)[art["precision"]],
        selection_reason=v["selection_reason"],
        device=v.get("device_facts"),
        speedup_vs_teacher_p90=teacher["latency"]["p90_ms"] / art["latency"]["p90_ms"],
        accuracy_drop=teacher["accuracy"] - art["accuracy"],
        distill={k: distill.get(k) for k in ("best_val_acc", "best_epoch", "history", "loss",
                                             "loss_args", "teacher_cache", "kd_augment", "layers",
                                             "loss_facts", "weight_average",
                                             "generations")},  # fmt: skip
        quantization={k: val for k, val in quant.items() if k != "summary"},
        export={k: onnx.get(k)
                for k in ("opset", "qdq_pairs", "ops_int8", "float_conv_gemm_left", "lint",
                          "precision")},
        parity=onnx["parity"],
        environment=manifest.run["versions"]
        | {"seed": manifest.run["seed"], "train_device": manifest.run.get("device", "cpu")},
        stages=_stages(manifest),
        wall_s=manifest.run.get("wall_s", 0.0),
    ).model_dump(mode="json")
    report = _with_figures(report, results.checked.figures)
    report["warnings"] = warnings(report)
    return Report.model_validate(report).model_dump(mode="json")


def write_reports(ctx: RunContext, manifest: Manifest, results: RunResults) -> tuple[dict, int]:
    """Write report.json, report.md, report.html and junit.xml; return the report and the
    exit code (0 budgets met, 2 a budget missed)."""
    report = build_report(ctx, manifest, results)
    root = Path(ctx.run.root)
    write_json(root / "report.json", report)
    render_all(root, report)
    return report, report["verdict"]["exit_code"]
