"""Plots for report.html, drawn with matplotlib (Agg) from report.json alone, as PNG bytes."""

from __future__ import annotations

import io
import math


def _fig():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _fig().close(fig)
    return buf.getvalue()


def training_curves(r: dict) -> bytes | None:
    """Loss terms and validation accuracy per epoch, distillation then QAT."""
    phases = [("distill", r["distill"].get("history") or [])]
    phases.append(("qat", r["quantization"].get("history") or []))
    if not any(h for _, h in phases):
        return None
    plt = _fig()
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.4))
    offset = 0
    for phase, hist in phases:
        if not hist:
            continue
        epochs = [offset + h["epoch"] for h in hist]
        for key in sorted(k for k in hist[0] if k.startswith("loss_")):
            ax_l.plot(epochs, [h[key] for h in hist], marker=".", label=f"{phase} {key[5:]}")
        ax_a.plot(epochs, [h["val_acc"] for h in hist], marker="o", label=phase)
        offset = epochs[-1]
    ax_l.set(xlabel="epoch", ylabel="loss", title="loss terms", yscale="log")
    ax_a.set(xlabel="epoch", ylabel="val top-1 %", title="validation accuracy")
    ax_a.axhline(r["teacher"]["accuracy"], color="gray", ls="--", label="teacher")
    for ax in (ax_l, ax_a):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _png(fig)


def latency_chart(r: dict) -> bytes:
    """p50 / p90 / p99 of the teacher and every student artifact, with the latency budget."""
    return _png(latency_figure(r))


def latency_figure(r: dict):
    """The figure of `latency_chart`. Its log axis is labelled with plain numbers (matplotlib's
    default also labels minor ticks when the range spans under a decade, and those labels
    overlapped): at 1..9 of a decade when the range spans under one, at 1, 2 and 5 up to
    three decades, at each decade beyond."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plt = _fig()
    rows = [("teacher", r["teacher"])] + [(f"student {p}", m) for p, m in r["variants"].items()]
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.55 * len(rows)))
    names = [n for n, _ in rows]
    for i, key in enumerate(("p50_ms", "p90_ms", "p99_ms")):
        ax.barh(
            [y + i * 0.25 for y in range(len(rows))],
            [m["latency"][key] for _, m in rows],
            height=0.25,
            label=key.replace("_ms", ""),
        )
    ax.set_yticks([y + 0.25 for y in range(len(rows))], names)
    budget = r["budgets"].get("latency_ms")
    if budget:
        ax.axvline(budget, color="red", ls="--", label=f"budget {budget} ms")
    kind = "measured" if r["artifact"]["latency"]["measured"] else "predicted"
    ax.set(xlabel=f"latency, ms ({kind}, batch 1)", xscale="log")
    values = [m["latency"][k] for _, m in rows for k in ("p50_ms", "p90_ms", "p99_ms")]
    values += [budget] if budget else []
    positive = [v for v in values if v and v > 0]
    if positive:  # the bars start at the left edge: a fixed margin either side
        ax.set_xlim(min(positive) / 1.3, max(positive) * 1.3)
    decades = math.log10(max(positive) / min(positive) * 1.69) if positive else 0
    subs = tuple(range(1, 10)) if decades < 1 else (1.0, 2.0, 5.0) if decades <= 3 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    return fig


def layer_chart(r: dict) -> bytes | None:
    """The slowest layers of the shipped artifact, by the cost model, coloured by bound."""
    layers = (r.get("layers") or {}).get("rows") or []
    if not layers:
        return None
    plt = _fig()
    colors = {"compute": "tab:blue", "memory": "tab:orange", "overhead": "tab:gray",
              "fill": "tab:purple", "measured": "tab:green"}  # fmt: skip
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.3 * len(layers)))
    ys = list(range(len(layers)))[::-1]
    ax.barh(
        ys, [la["ms"] for la in layers], color=[colors.get(la["bound"], "tab:red") for la in layers]
    )
    ax.set_yticks(
        ys, [f"{la['name'][-40:]} ({la['op']}, {la['precision']})" for la in layers], fontsize=7
    )
    ax.set(
        xlabel="predicted ms",
        title="slowest layers (blue compute-, orange memory-, purple SM-fill-, gray "
        "overhead-bound; green measured on the device)",
    )
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)
