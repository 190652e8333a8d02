"""A measured lookup table per target: what each kind of layer took on the device.

When edgekd times an engine on a device (`--device` / `--remote` with trtexec), the per-layer
profile (`--exportProfile`) is matched to the ONNX's costed layers and stored as
`$EDGEKD_HOME/targets/layer-tables/<target>.json`, keyed by the layer's signature (op, op
class, precision, FLOPs, bytes). The cost model then uses the measured time for every layer
with a known signature -- in this model or any later one with the same layer -- and the
roofline only for the rest (a measured lookup beats the roofline when present).

TensorRT names its layers after the ONNX nodes it fused ("/conv/Conv + /relu/Relu",
"PWN(/act/Sigmoid, /act/Mul)", "Reformatting CopyNode for Input Tensor 0 to /conv/Conv"): each
profile entry is charged to the costed layer of the first ONNX node it names. A Myelin region,
"{ForeignNode[/a/Conv.../z/Gemm]}", is charged to the costed layers from its first to its last
node, split by their FLOPs (the profile gives one time for the region).
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from edgekd._io import write_json
from edgekd.latency.graph import Layer, costed_layers, load_onnx
from edgekd.latency.trtexec import parse_layer_profile
from edgekd.targets import user_profiles_dir

_TOKEN = re.compile(r"[^\s+(),]+")
# a Myelin region: "{ForeignNode[first...last]}" names the first and last ONNX node it fused
_FOREIGN = re.compile(r"\{ForeignNode\[(.+?)\.\.\.(.+?)\]\}")


def signature(layer: Layer) -> str:
    return f"{layer.op}|{layer.op_class}|{layer.precision}|{layer.flops:.0f}|{layer.bytes:.0f}"


def table_path(target_name: str) -> Path:
    return user_profiles_dir() / "layer-tables" / f"{target_name}.json"


def match_profile(layers: list[Layer], layer_times) -> tuple[dict[str, float], float]:
    """(signature -> measured ms for this model, ms of profile entries that matched nothing)."""
    owner: dict[str, Layer] = {}
    for layer in layers:
        owner.setdefault(layer.name, layer)
        for fused in layer.fused:
            owner.setdefault(fused, layer)
    per_layer: dict[str, float] = {}
    sig_of: dict[str, str] = {}
    unmatched = 0.0
    order = [layer.name for layer in layers]
    for entry in layer_times:
        span = _foreign_span(entry.name, layers, owner, order)
        if span:  # a Myelin region: its time shared over its layers by their roofline FLOPs
            total = sum(max(x.flops, 1.0) for x in span)
            for x in span:
                per_layer[x.name] = per_layer.get(x.name, 0.0) + entry.average_ms * max(
                    x.flops, 1.0) / total  # fmt: skip
                sig_of[x.name] = signature(x)
            continue
        hit = next((owner[t] for t in _TOKEN.findall(entry.name) if t in owner), None)
        if hit is None:
            unmatched += entry.average_ms
            continue
        per_layer[hit.name] = per_layer.get(hit.name, 0.0) + entry.average_ms
        sig_of[hit.name] = signature(hit)
    measured: dict[str, list[float]] = {}
    for name, ms in per_layer.items():
        measured.setdefault(sig_of[name], []).append(ms)
    return {k: statistics.median(v) for k, v in measured.items()}, unmatched


def _foreign_span(name: str, layers: list[Layer], owner: dict, order: list[str]) -> list[Layer]:
    """The costed layers from the first to the last node a ForeignNode entry names (NVIDIA/
    TensorRT #3768 shows such names), or [] when it is not one or its ends are unknown."""
    m = _FOREIGN.search(name)
    if not m:
        return []
    first, last = owner.get(m.group(1)), owner.get(m.group(2))
    if first is None or last is None:
        return []
    i, j = order.index(first.name), order.index(last.name)
    return layers[min(i, j) : max(i, j) + 1]


def load_table(target_name: str) -> dict[str, float]:
    path = table_path(target_name)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {k: statistics.median(v) for k, v in data["samples"].items() if v}
    except (ValueError, KeyError, TypeError, statistics.StatisticsError):
        return {}  # a damaged table is ignored: the roofline still answers


def update_table(target_name: str, measured: dict[str, float], source: str) -> Path:
    """Merge this model's measured layers into the target's table (samples kept per key)."""
    path = table_path(target_name)
    data = {"target": target_name, "samples": {}, "sources": []}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            pass
    for key, ms in measured.items():
        data["samples"].setdefault(key, []).append(ms)
    data["sources"] = (data.get("sources") or [])[-49:] + [source]
    return write_json(path, data)


def learn_from_trtexec(onnx_path, target, precision: str, profile_path: Path) -> dict:
    """Match a trtexec per-layer profile of `onnx_path` (built at `precision`) to its costed
    layers and add them to the target's table; returns what was learned."""
    layers = costed_layers(load_onnx(onnx_path), target, precision)
    measured, unmatched = match_profile(layers, parse_layer_profile(profile_path.read_text()))
    path = update_table(target.name, measured, f"{Path(onnx_path).name} ({precision})")
    return {
        "layers_matched": len(measured),
        "layers_costed": len(layers),
        "unmatched_ms": unmatched,
        "table": str(path),
    }
