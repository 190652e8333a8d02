"""Sentences both report.md and report.html use."""

from __future__ import annotations

import re

# characters XML 1.0 cannot hold at all (not even escaped): C0 controls but tab, LF, CR;
# surrogates; U+FFFE/U+FFFF
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def xml_text(text: str) -> str:
    """text that XML 1.0 can hold: each character it cannot becomes U+FFFD."""
    return _XML_BAD.sub("\ufffd", text)


def md_text(text: str) -> str:
    """text safe inside one Markdown line or table cell: no raw HTML (< > & as entities), no
    cell break (|), no line break (control characters become spaces)."""
    text = _CONTROL.sub(" ", text)
    for raw, esc in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"), ("`", "'")):
        text = text.replace(raw, esc)
    return text


def md_safe(obj):
    """A report with md_text applied to every string in it (numbers untouched)."""
    if isinstance(obj, str):
        return md_text(obj)
    if isinstance(obj, dict):
        return {k: md_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [md_safe(v) for v in obj]
    return obj


def data_line(d: dict) -> str:
    """One line naming the data, its splits and what top-1 means."""
    split = f"{d['train']} train / {d['val']} val"
    if d.get("test"):
        split += f" / {d['test']} test"
    return (f"Data `{d['name']}`: {split} images, {d['num_classes']} classes, input "
            f"{'x'.join(map(str, d['input_shape']))}; top-1 is "
            f"{d.get('accuracy_metric', 'top-1 accuracy on the labeled val set')}.")  # fmt: skip


def int8_graph(q: dict) -> str:
    """Which fake-quant graph the INT8 student was calibrated and trained as."""
    if q.get("graph") == "ort":
        ranges = "learned (LSQ)" if q.get("learn_ranges") else "calibrated"
        return ("INT8 trained as ONNX Runtime runs it (ORT's Q/DQ graph, BatchNorm folded, "
                f"ranges {ranges}; the file is written from it, nothing "
                "re-calibrated)")  # fmt: skip
    return "Model Optimizer INT8"


def precision_line(export: dict) -> str | None:
    """The per-block precision choice of the INT8 graph (edgekd.quant.precision for ONNX
    Runtime, edgekd.quant.trt_precision for TensorRT), capitalised; None for a run without
    it."""
    line = (export.get("precision") or {}).get("line")
    return line[0].upper() + line[1:] if line else None


def residual_line(q: dict) -> str | None:
    """What happened to the model's residual Adds (`edgekd.quant.residual`), each one left in
    float with its reason; None for a run without the record."""
    r = q.get("residual_adds")
    if not r or not r.get("adds"):
        return None
    line = (f"residual Adds: {r['quantized']} of {r['adds']} quantized on their skip input, so "
            "TensorRT fuses each into its convolution in INT8")  # fmt: skip
    if r["left_float"]:
        line += "; left in float: " + "; ".join(
            f"Add #{a['index']} ({a['reason']})" for a in r["left_float"]
        )
    return line


def augment_note(r: dict) -> str:
    """The distillation line's note on the batches: ", batches mixed (mixup)", ", batches
    hard-augmented (...)", or nothing when they were left as they came."""
    d = r.get("distill") or {}
    aug = d.get("kd_augment")
    if aug in (None, "none"):
        return ""
    if aug != "hard":
        return f", batches mixed ({aug})"
    kept = [h["hard_kept"] for h in d.get("history") or [] if "hard_kept" in h]
    share = f": {kept[-1]:.0%} of the augmented images kept in the last epoch" if kept else ""
    return f", batches hard-augmented (HARD-affine{share})"


def averaging_note(r: dict) -> str:
    """The distillation line's note on weight averaging (nothing without --weight-average)."""
    d = r.get("distill") or {}
    wa = d.get("weight_average")
    if not wa:
        return ""
    if wa.get("window") != "swad":
        return (f", weights averaged uniformly from {wa['start']:.0%} of the steps (BatchNorm "
                f"{wa['bn']})")  # fmt: skip
    f = (d.get("loss_facts") or {}).get("weight_average") or {}
    if not f.get("segments_averaged"):
        return (f", SWAD's window never opened in {f.get('segments', 0)} segments (the plain "
                "weights kept)")  # fmt: skip
    first, last = f["opened_at_segment"] + 1, f["closed_at_segment"] + 1
    return (f", weights averaged over SWAD's window: segments {first}-{last} of "
            f"{f['segments']} ({f['frequency']} steps each)")  # fmt: skip
