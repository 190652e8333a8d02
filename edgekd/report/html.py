"""report.html: one self-contained page (plots embedded as base64 PNG) rendered from report.json."""

from __future__ import annotations

import base64
import html

from edgekd.report import plots
from edgekd.report.text import (
    augment_note,
    averaging_note,
    data_line,
    int8_graph,
    precision_line,
    residual_line,
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.verdict{padding:1rem 1.2rem;border-radius:6px;font-size:1.3rem;font-weight:600}
.pass{background:#e3f6e5;color:#17622a}.fail{background:#fde8e8;color:#9b1c1c}
.note{color:#555;font-size:.9rem}.tag{font-size:.75rem;padding:.1rem .35rem;border-radius:3px;
background:#eee;margin-left:.3rem}img{max-width:100%}code{background:#f4f4f4;padding:0 .2rem}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _why_student(r: dict) -> str:
    """How the student search chose the student (--student auto|search); empty otherwise."""
    pick = r["student"].get("search")
    if not pick:
        return ""
    return (
        f'<p class="note"><b>Why this student:</b> <code>{_e(r["student"]["name"])}</code> by '
        f"the student search (--student {_e(pick.get('mode', 'search'))}): "
        f"{_e(pick.get('how', ''))}. Every candidate: "
        f"<code>{_e(pick.get('candidates_file', 'search/candidates.json'))}</code>.</p>\n"
    )


def _img(png: bytes | None, alt: str) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode()
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(head: list[str], rows: list[list]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def _lat(m: dict) -> list[str]:
    la = m["latency"]
    tag = "" if la["measured"] else '<span class="tag">predicted</span>'
    return [f"{la['p50_ms']:.3f}", f"{la['p90_ms']:.3f}", f"{la['p99_ms']:.3f}{tag}"]


def render_html(r: dict) -> str:
    v = r["verdict"]
    ok = v["passed"]
    gates = _table(
        ["gate", "value", "limit", "result", "detail"],
        [
            [
                _e(g["name"]),
                f"{g['value']:.3f} {_e(g['unit'])}",
                f"{g['limit']} {_e(g['unit'])}",
                "pass" if g["passed"] else "<b>FAIL</b>",
                _e(g["detail"]),
            ]
            for g in v["gates"]
        ]
        or [["(no budgets set)", "", "", "", ""]],
    )
    models = [
        [
            "teacher",
            _e(r["teacher"]["precision"]),
            f"{r['teacher']['accuracy']:.2f}",
            "—",
            *_lat(r["teacher"]),
            f"{r['teacher']['size_mb']:.2f}",
            f"{r['teacher'].get('params', 0) / 1e6:.2f}",
            _gf(r["teacher"]),
        ]
    ]
    for p, m in r["variants"].items():
        name = _e(r["student"]["name"]) + (
            " <b>(shipped)</b>" if p == r["artifact"]["precision"] else ""
        )
        models.append(
            [
                name,
                _e(p),
                f"{m['accuracy']:.2f}",
                f"{m['agreement']:.2f}",
                *_lat(m),
                f"{m['size_mb']:.2f}",
                f"{r['student']['params'] / 1e6:.2f}",
                _gf(m),
            ]
        )
    model_table = _table(
        [
            "model",
            "precision",
            "top-1 %",
            "agreement %",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "size MB",
            "params M",
            "GFLOPs",
        ],
        models,
    )
    layers = r.get("layers") or {}
    layer_rows = [
        [
            _e(la["name"]),
            _e(la["op"]),
            _e(la["precision"]),
            f"{la['flops'] / 1e6:.2f}",
            f"{la['bytes'] / 1e3:.1f}",
            f"{la['ms']:.4f}",
            _e(la["bound"]),
        ]
        for la in layers.get("rows", [])
    ]
    q = r["quantization"]
    fusion = r["export"].get("float_conv_gemm_left", {})
    env = _table(["", ""], [[_e(k), _e(val)] for k, val in r["environment"].items()])
    parity = _table(
        ["export", "top-1 agreement %", "max |diff|", "mean |diff|", "samples"],
        [
            [
                _e(p),
                f"{x['top1_agreement']:.2f}",
                f"{x['max_abs_diff']:.3e}",
                f"{x['mean_abs_diff']:.3e}",
                x["samples"],
            ]
            for p, x in r["parity"].items()
        ],
    )
    bad = q.get("zero_or_bad_ranges") or {}
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>edgekd report — {_e(r["target"])}</title><style>{CSS}</style></head><body>
<h1>edgekd report</h1>
<div class="verdict {"pass" if ok else "fail"}" id="verdict">{"PASS" if ok else "BUDGET MISSED"}
 — exit code {v["exit_code"]}</div>
<p class="note">Target <code>{_e(r["target"])}</code> ({_e(r["runtime"])}); latency
{_e(r["latency_source"])}. Student <code>{_e(r["student"]["name"])}</code>; shipped
<code>{_e(r["artifact"]["path"])}</code> ({_e(r["artifact"]["precision"])}, sha256
<code>{_e(r["artifact"]["sha256"][:16])}…</code>), {r["speedup_vs_teacher_p90"]:.1f}x faster than
the teacher at p90, accuracy drop {r["accuracy_drop"]:.2f} points.</p>
{"".join(f'<p class="note"><b>Warning:</b> {_e(w)}.</p>' for w in r.get("warnings") or [])}
<h2>Budgets</h2>{gates}
<h2>Teacher vs student</h2><p class="note">{_e(data_line(r["data"]))}</p>{model_table}
{_why_student(r)}<p class="note"><b>Why this precision:</b> {_e(r["selection_reason"])}.</p>
{_img(plots.latency_chart(r), "latency per artifact")}
<h2>Training</h2>{_img(plots.training_curves(r), "training curves")}
<p class="note">Distillation ({_e(r["distill"].get("loss") or "kd")} loss, teacher
{_e(r["distill"].get("teacher_cache") or "live")}{_mixed_note(r)}) best val
{r["distill"]["best_val_acc"]:.2f}% at epoch {r["distill"]["best_epoch"]}. Accuracy here is
{_e(r["data"].get("accuracy_metric", "top-1 accuracy on the labeled val set"))}.</p>
<h2>Quantization</h2>
<p class="note">{_e(int8_graph(q))} ({_e(q.get("method"))} calibration on {q.get("calib_size")}
images): PTQ {q.get("ptq_val_acc", 0):.2f}%{
        f", QAT {q['qat_val_acc']:.2f}%" if "qat_val_acc" in q else ""
    }; {_e(q.get("kept", "ptq")).upper()} weights exported. Float Conv/Gemm left in ONNX
Runtime's optimized graph: {_e(", ".join(f"{k}: {n}" for k, n in fusion.items()))}.
{_e(precision_line(r["export"]) or "")}
{_e((line[0].upper() + line[1:] + ".") if (line := residual_line(q)) else "")}
{
        ("Calibration ranges to check: " + _e(", ".join(f"{k} {v}" for k, v in bad.items())))
        if bad
        else "Every calibration range is finite and non-zero."
    }</p>
{_precision_html(r["export"])}
{_sensitivity_html(q)}
<h2>Parity (ONNX Runtime vs torch)</h2>{parity}
{
        (
            '<p class="note"><b>TensorRT lint:</b> '
            + _e(
                "; ".join(
                    f"{k}: {v['errors']} error(s), {v['warnings']} warning(s) {v['rules']}"
                    for k, v in (r["export"].get("lint") or {}).items()
                )
            )
            + "</p>"
        )
        if r["export"].get("lint")
        else ""
    }
<h2>Per-layer latency of the shipped artifact</h2>
<p class="note">{_e(layers.get("source", "not available: the target has no cost model"))}
{f"— total {layers['total_ms']:.3f} ms" if layers.get("total_ms") else ""}</p>
{_img(plots.layer_chart(r), "slowest layers")}
{
        _table(["layer", "op", "precision", "MFLOPs", "KB", "ms", "bound"], layer_rows)
        if layer_rows
        else ""
    }
<h2>Environment</h2>{env}
<p class="note">report schema {_e(r["schema_version"])}, run directory {_e(r["run_dir"])},
{r["wall_s"]:.1f} s wall.</p>
</body></html>
"""


def _mixed_note(r: dict) -> str:
    return _e(augment_note(r) + averaging_note(r))


def _precision_html(export: dict) -> str:
    """The per-block precision choice (edgekd.quant.precision): each block, its layers, the
    precision it got and why."""
    blocks = (export.get("precision") or {}).get("blocks") or []
    if not blocks:
        return ""
    table = _table(
        ["block", "layers", "precision", "why"],
        [[_e(b["block"]), _e(", ".join(b["layers"])), _e(b["precision"]), _e(b["why"])]
         for b in blocks],
    )  # fmt: skip
    return f"<h3>Precision per block</h3>{table}"


def _sensitivity_html(q: dict) -> str:
    sens = q.get("sensitivity") or []
    if not sens:
        return ""
    table = _table(
        ["rank", "layer", "KL when only this layer is INT8"],
        [[i + 1, _e(s["layer"]), f"{s['kl']:.3e}"] for i, s in enumerate(sens[:10])],
    )
    kept = (
        f'<p class="note">Kept in higher precision: {_e(", ".join(q["float_layers"]))}'
        f" (fake-quant val {q['mixed_val_acc']:.2f}%).</p>"
        if q.get("float_layers")
        else ""
    )
    return f"<h3>Quantization sensitivity</h3>{table}{kept}"


def _gf(m: dict) -> str:
    g = m.get("gflops")
    return f"{g:.3f}" if g is not None else "—"
