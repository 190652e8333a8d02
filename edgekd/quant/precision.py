"""Precision per layer, by measured latency, for ONNX Runtime's INT8 graph (`ort_qat.OrtQdq`).

INT8 is not faster everywhere: at small spatial sizes a depthwise convolution gains little
from integer arithmetic and its quantize/dequantize kernels cost more than they save, and a
small model at 32x32 runs slower in INT8 than in FP32 altogether. The layers are taken block
by block (the torch module that holds them: `blocks.1.0`, `layer2.1`, `conv_stem`), in graph
order. One block alone in float is never faster: it adds a float/INT8 boundary at each side
(a DequantizeLinear in, a QuantizeLinear out) and saves little. So the candidates are the
cuts with one boundary: the blocks from k on in float (a float tail, where feature maps are
smallest), or the blocks before k (a float head), for every k, plus all INT8:

1. every candidate is written as the file that would ship (`export_ort`: the trained
   weights, a float block's Q/DQ pairs dropped where no INT8 layer needs them) and timed in
   ONNX Runtime on this machine in interleaved rounds (`latency.measure.interleaved`), the
   p50 of `iters` runs after `warmup` per round;
2. the fastest candidate by median p50 is kept when it beat all-INT8 in every round and
   its median per-round ratio to all-INT8 is under 1 - `min_saving`; otherwise every layer
   stays INT8. So the graph that leaves here is never slower
   than all-INT8 as measured. All layers in float is not a candidate: that is the FP32
   artifact, which the validate stage times against this one.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgekd.quant.ort_qat import OrtQdq, export_ort


def block_of(source: str) -> str:
    """The block a layer belongs to: its torch name up to the last numeric component that
    has a named module below it (`blocks.1.0.se.conv_reduce` -> `blocks.1.0`,
    `layer4.0.downsample.0` -> `layer4.0`); a layer outside any numbered block is its own
    block (`conv_stem`, `fc`, `stem.0`)."""
    parts = source.split("#")[0].split(".")
    idx = [i for i, p in enumerate(parts[:-1]) if p.isdigit()]
    return ".".join(parts[: idx[-1] + 1]) if idx else ".".join(parts)


def blocks(model: OrtQdq) -> dict[str, list[str]]:
    """Block -> its layer keys, in graph order."""
    out: dict[str, list[str]] = {}
    for key, layer in model.layers.items():
        out.setdefault(block_of(layer.source), []).append(key)
    return out


@dataclass
class PrecisionChoice:
    kept: str  # int8 | mixed
    float_blocks: list[str]
    int8_ms: float  # median p50 of the all-INT8 graph over the rounds
    mixed_ms: float | None  # the same for the fastest cut (None: a model of one block)
    ratio: float | None  # its median per-round latency ratio to all-INT8
    noise_pct: float  # spread of the fastest cut's per-round ratios to all-INT8, in points
    candidates: int
    blocks: list[dict] = field(default_factory=list)  # block, layers, precision, why
    threads: int = 1

    def to_record(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        """One line for the log and the report."""
        if self.kept == "int8":
            best = "one block"
            if self.mixed_ms is not None:
                best = (f"the fastest of {self.candidates} cuts ({self.mixed_ms:.3f} ms against "
                        f"{self.int8_ms:.3f} ms, x{self.ratio:.2f} with a spread of "
                        f"{self.noise_pct:.0f} points over the rounds) was not faster in every "
                        "round by the margin")  # fmt: skip
            return f"precision per block: every layer INT8 ({best})"
        return (f"precision per block: {len(self.float_blocks)} of {len(self.blocks)} blocks in "
                f"float ({', '.join(self.float_blocks)}): {self.mixed_ms:.3f} ms against "
                f"{self.int8_ms:.3f} ms all INT8 (x{self.ratio:.2f}, {self.threads} thread(s), "
                f"{self.candidates} cuts measured)")  # fmt: skip


def cuts(names: list[str]) -> list[tuple[str, list[str]]]:
    """(label, float blocks) of every one-boundary cut: all INT8, each float tail, each float
    head (never every block in float)."""
    n = len(names)
    out = [("all INT8", [])]
    out += [(f"float from {names[k]}", names[k:]) for k in range(1, n)]
    out += [(f"float up to {names[k - 1]}", names[:k]) for k in range(1, n)]
    return out


def best_cut(times: list[list[float]], min_saving: float) -> tuple[int, float, float]:
    """(index, median ratio, ratio spread %) of the candidate to keep: the fastest by median,
    if it beat candidate 0 (all INT8) in every round and its median per-round latency ratio
    is under 1 - `min_saving`; else candidate 0. Rounds are paired (each round times every
    candidate back to back), so a slow spell of the machine moves both sides of a ratio."""
    med = [statistics.median(t) for t in times]
    best = min(range(len(times)), key=lambda i: med[i])
    ratios = [b / a for a, b in zip(times[0], times[best], strict=True)]
    ratio = statistics.median(ratios)
    spread = (max(ratios) - min(ratios)) * 100
    keep = best if ratio < 1 - min_saving and max(ratios) < 1 else 0
    return keep, ratio, spread


def p50_timer(paths: list[Path], threads: int, warmup: int, iters: int, shape):
    """measure(i, round) -> p50 ms of `paths[i]` at batch 1 (one ORT session each)."""
    from edgekd.backends.onnxruntime import session
    from edgekd.latency.measure import time_calls

    sessions = [session(p, threads) for p in paths]
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    feeds = [{s.get_inputs()[0].name: x} for s in sessions]

    def measure(i: int, _round: int) -> float:
        s, feed = sessions[i], feeds[i]
        return time_calls(lambda: s.run(None, feed), warmup=warmup, iters=iters, batch=1,
                          threads=threads, runtime="onnxruntime").p50_ms  # fmt: skip

    return measure


def measured_precision(
    model: OrtQdq,
    input_shape,
    threads: int = 1,
    rounds: int = 5,
    warmup: int = 5,
    iters: int = 30,
    min_saving: float = 0.03,
    say: Callable[[str], None] | None = None,
    timer=None,
) -> PrecisionChoice:
    """Choose the float blocks of `model` by measured ORT latency (see the module docstring)
    and leave `model` in the chosen configuration. `timer(configs)` -> measure(i, round)
    replaces the ORT timing (tests); `configs` are the float-block lists of the candidates."""
    from edgekd.latency.measure import interleaved

    say = say or (lambda _m: None)
    groups = blocks(model)
    names = list(groups)
    cands = cuts(names)
    with tempfile.TemporaryDirectory() as d:
        if timer is None:
            paths = []
            for i, (_, fl) in enumerate(cands):
                model.set_float([k for b in fl for k in groups[b]])
                paths.append(export_ort(model, Path(d) / f"cut{i}.onnx"))
            measure = p50_timer(paths, threads, warmup, iters, input_shape)
        else:
            measure = timer([fl for _, fl in cands])
        say(f"precision per block: timing {len(cands)} cuts of {len(names)} blocks into a float "
            f"and an INT8 part ({rounds} interleaved rounds, {threads} thread(s))")  # fmt: skip
        times = interleaved(len(cands), rounds, measure)
    keep, ratio, noise = best_cut(times, min_saving) if len(cands) > 1 else (0, None, 0.0)
    chosen = cands[keep][1]
    model.set_float([k for b in chosen for k in groups[b]])
    med = [statistics.median(t) for t in times]
    fastest = min(range(len(cands)), key=lambda i: med[i])
    rows = []
    for b in names:
        if b in chosen:
            why = f"in the {cands[keep][0]} cut, the fastest measured"
        elif keep:
            why = f"left INT8 by the {cands[keep][0]} cut"
        else:
            why = (f"every layer INT8: the fastest cut ({cands[fastest][0]}) was not "
                   "faster beyond the noise")  # fmt: skip
        rows.append({"block": b, "layers": [model.layers[k].source for k in groups[b]],
                     "precision": "fp32" if b in chosen else "int8", "why": why})  # fmt: skip
    return PrecisionChoice(
        "mixed" if keep else "int8", list(chosen), med[0],
        med[fastest] if len(cands) > 1 else None, ratio, noise, len(cands), rows, threads,
    )  # fmt: skip


__all__ = ["PrecisionChoice", "best_cut", "block_of", "blocks", "cuts", "measured_precision",
           "p50_timer"]  # fmt: skip
