"""Precision per block, by latency, for ONNX Runtime's INT8 graph (`ort_qat.OrtQdq`): measured
on this machine, or costed by the target's cost model where the target is not this machine.

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
   p50 of `iters` runs after `warmup` per round; for a target that is not this machine
   (`target=`, a profile with a cost model) each file is costed by
   `latency.cost.predict_latency` instead, once (the cost model is deterministic): the
   Q/DQ kernels ONNX Runtime cannot fuse count at each float/INT8 boundary;
2. the fastest candidate by median p50 is kept when it beat all-INT8 in every round and
   its median per-round ratio to all-INT8 is under 1 - `min_saving`; otherwise every layer
   stays INT8. All layers in float is not a candidate: that is the FP32 artifact, which the
   validate stage times against this one;
3. when measured, that winner is timed again against all-INT8 in `rounds` fresh interleaved
   rounds and kept only if it passes the same test there. The fastest of many noisy
   candidates is partly the luckiest (a winner's curse: with 2 threads on a shared machine a
   round's spread can exceed 30%), so its first figures overstate its saving; the fresh
   rounds are an estimate that the pick did not select, and the figures reported are theirs.
   So the graph that leaves here is not slower than all-INT8 as measured twice.

Layers already in float when the choice starts (the quantize stage's accuracy budget keeps
its most sensitive layers there, `sensitivity.mixed_precision`) stay in float in every
candidate: latency only adds float layers to them, never takes one back to INT8. A block all
of whose layers are such is not cut at all.
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
    how: str = "measured"  # measured (this machine) | the name of the target costed
    accuracy_float: list[str] = field(default_factory=list)  # layers in float for accuracy
    rejected: str | None = None  # the cut the fresh rounds did not confirm (step 3)

    def to_record(self) -> dict:
        return asdict(self)

    def _timed(self) -> str:
        if self.how == "measured":
            return f"{self.threads} thread(s), {self.candidates} cuts measured"
        return f"{self.candidates} cuts costed by the {self.how} cost model"

    def line(self) -> str:
        """One line for the log and the report."""
        extra = ""
        if self.accuracy_float:
            extra = (f"; {len(self.accuracy_float)} layer(s) kept in float for accuracy "
                     "before the choice")  # fmt: skip
        if self.kept == "int8":
            if self.mixed_ms is None:
                best = "one block"
            elif self.rejected is not None:
                best = (f"the fastest of {self.candidates} cuts ({self.rejected}) was not "
                        f"confirmed in fresh rounds: {self.mixed_ms:.3f} ms against "
                        f"{self.int8_ms:.3f} ms, x{self.ratio:.2f} with a spread of "
                        f"{self.noise_pct:.0f} points")  # fmt: skip
            elif self.how != "measured":
                best = (f"the fastest of {self.candidates} cuts costed by the {self.how} "
                        f"cost model ({self.mixed_ms:.3f} ms against {self.int8_ms:.3f} ms, "
                        f"x{self.ratio:.2f}) was not faster by the margin")  # fmt: skip
            else:
                best = (f"the fastest of {self.candidates} cuts ({self.mixed_ms:.3f} ms against "
                        f"{self.int8_ms:.3f} ms, x{self.ratio:.2f} with a spread of "
                        f"{self.noise_pct:.0f} points over the rounds) was not faster in every "
                        "round by the margin")  # fmt: skip
            return f"precision per block: every layer INT8 ({best}){extra}"
        return (f"precision per block: {len(self.float_blocks)} of {len(self.blocks)} blocks in "
                f"float ({', '.join(self.float_blocks)}): {self.mixed_ms:.3f} ms against "
                f"{self.int8_ms:.3f} ms all INT8 (x{self.ratio:.2f}, "
                f"{self._timed()}){extra}")  # fmt: skip


def cuts(names: list[str]) -> list[tuple[str, list[str]]]:
    """(label, float blocks) of every one-boundary cut: all INT8, each float tail, each float
    head (never every block in float)."""
    n = len(names)
    out = [("all INT8", [])]
    out += [(f"float from {names[k]}", names[k:]) for k in range(1, n)]
    out += [(f"float up to {names[k - 1]}", names[:k]) for k in range(1, n)]
    return out


def fastest(times: list[list[float]], floats: list[int] | None = None) -> int:
    """The candidate with the lowest median; among equal medians (a cost model's ties: a
    layer bound by launch overhead costs the same in INT8 and in float) the one with the most
    float layers (`floats[i]`), since a layer stays in float where INT8 is not faster."""
    med = [statistics.median(t) for t in times]
    floats = floats or [0] * len(times)
    return min(range(len(times)), key=lambda i: (med[i], -floats[i]))


def best_cut(times: list[list[float]], min_saving: float,
             floats: list[int] | None = None) -> tuple[int, float, float]:  # fmt: skip
    """(index, median ratio, ratio spread %) of the candidate to keep: the fastest by median
    (`fastest`), if it beat candidate 0 (all INT8) in every round and its median per-round
    latency ratio is under 1 - `min_saving`; else candidate 0. Rounds are paired (each round
    times every candidate back to back), so a slow spell of the machine moves both sides of a
    ratio."""
    best = fastest(times, floats)
    beats, ratio, spread = beats_int8(times[0], times[best], min_saving)
    return (best if beats else 0), ratio, spread


def beats_int8(int8: list[float], other: list[float],
               min_saving: float) -> tuple[bool, float, float]:  # fmt: skip
    """(whether `other` beat all-INT8 in every paired round with a median ratio under
    1 - `min_saving`, that median ratio, the ratios' spread in points)."""
    ratios = [b / a for a, b in zip(int8, other, strict=True)]
    ratio = statistics.median(ratios)
    return ratio < 1 - min_saving and max(ratios) < 1, ratio, (max(ratios) - min(ratios)) * 100


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


def predicted_timer(paths: list[Path], target, precision: str | None = None):
    """measure(i, round) -> the `target` cost model's batch-1 latency of `paths[i]` in ms
    (each costed once: the model is deterministic). `precision`: as `predict_latency` takes
    it; None keeps the file's own Q/DQ (ONNX Runtime), int8 builds it as TensorRT would."""
    from edgekd.latency.cost import predict_latency

    ms = [predict_latency(p, target, precision).total_ms for p in paths]
    return lambda i, _round: ms[i]


def choose_cut(
    groups: dict[str, list[str]],
    source: Callable[[str], str],
    fixed: list[str],
    write: Callable[[list[str], Path], Path],
    measure_of: Callable[[list[Path]], Callable[[int, int], float]],
    apply: Callable[[list[str]], None],
    rounds: int,
    min_saving: float,
    how: str,
    threads: int = 1,
    float_precision: str = "fp32",
    say: Callable[[str], None] | None = None,
    timer=None,
) -> PrecisionChoice:
    """The choice of the module docstring over any graph: `groups` (block -> layer keys, in
    graph order), `fixed` (keys in float before the choice: float in every cut), `write(config,
    path)` writes the candidate whose float layers are `config`, `measure_of(paths)` times or
    costs them, `apply(config)` leaves the model in the chosen one. `timer(configs)` replaces
    writing and timing (tests)."""
    from edgekd.latency.measure import interleaved

    say = say or (lambda _m: None)
    names = [b for b, ks in groups.items() if not set(ks) <= set(fixed)]
    cands = cuts(names) if names else [("all INT8", [])]
    configs = [fixed + [k for b in fl for k in groups[b] if k not in fixed] for _, fl in cands]
    with tempfile.TemporaryDirectory() as d:
        if timer is None:
            measure = measure_of([write(c, Path(d) / f"cut{i}.onnx")
                                  for i, c in enumerate(configs)])  # fmt: skip
        else:
            measure = timer(configs)
        timing = (f"{rounds} interleaved rounds, {threads} thread(s)" if how == "measured"
                  else f"costed by the {how} cost model")  # fmt: skip
        say(f"precision per block: timing {len(cands)} cuts of {len(names)} blocks into a float "
            f"and an INT8 part ({timing})")  # fmt: skip
        times = interleaved(len(cands), rounds, measure)
        floats = [len(c) for c in configs]
        keep, ratio, noise = (best_cut(times, min_saving, floats) if len(cands) > 1
                              else (0, None, 0.0))  # fmt: skip
        med = [statistics.median(t) for t in times]
        top = fastest(times, floats)
        rejected = None
        if keep and how == "measured":  # step 3: the winner again, in fresh rounds
            say(f"precision per block: timing the fastest cut ({cands[keep][0]}) against all "
                f"INT8 again in {rounds} fresh rounds")  # fmt: skip
            pair = (0, keep)
            again = interleaved(2, rounds, lambda j, r: measure(pair[j], rounds + r))
            confirmed, ratio, noise = beats_int8(*again, min_saving)
            med[0], med[keep] = (statistics.median(t) for t in again)
            if not confirmed:
                rejected, top, keep = cands[keep][0], keep, 0
    chosen = cands[keep][1]
    apply(configs[keep])
    rows = []
    verb = "measured" if how == "measured" else "costed"
    for b, keys in groups.items():
        acc = [source(k) for k in keys if k in fixed]
        if b not in names:
            why = "kept in float by the accuracy budget (quantize stage)"
        elif b in chosen:
            why = f"in the {cands[keep][0]} cut, the fastest {verb}"
        elif keep:
            why = f"left INT8 by the {cands[keep][0]} cut"
        elif rejected is not None:
            why = (f"every layer INT8: the fastest cut ({rejected}) was not faster again in "
                   "fresh rounds")  # fmt: skip
        else:
            why = (f"every layer INT8: the fastest cut ({cands[top][0]}) was not "
                   "faster beyond the noise")  # fmt: skip
        if acc and b in names:
            why += f"; {', '.join(acc)} kept in float by the accuracy budget"
        rows.append({"block": b, "layers": [source(k) for k in keys],
                     "precision": float_precision if b in chosen or b not in names else "int8",
                     "why": why})  # fmt: skip
    return PrecisionChoice(
        "mixed" if keep else "int8", list(chosen), med[0],
        med[top] if len(cands) > 1 else None, ratio, noise, len(cands), rows, threads,
        how, [source(k) for k in fixed], rejected,
    )  # fmt: skip


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
    target=None,
) -> PrecisionChoice:
    """Choose the float blocks of `model` by ORT latency (see the module docstring) and leave
    `model` in the chosen configuration. `target`: a profile timed by its cost model rather
    than on this machine (one round). `timer(configs)` -> measure(i, round) replaces the
    timing (tests); `configs` are the candidates' float-layer lists."""

    def write(config: list[str], path: Path) -> Path:
        model.set_float(config)
        return export_ort(model, path)

    def measure_of(paths: list[Path]):
        if target is None:
            return p50_timer(paths, threads, warmup, iters, input_shape)
        return predicted_timer(paths, target)

    return choose_cut(
        blocks(model), lambda k: model.layers[k].source, model.float_layers(), write,
        measure_of, model.set_float, rounds if target is None else 1, min_saving,
        "measured" if target is None else target.name, threads, "fp32", say, timer,
    )  # fmt: skip


__all__ = ["PrecisionChoice", "beats_int8", "best_cut", "block_of", "blocks", "choose_cut", "cuts",
           "fastest", "measured_precision", "p50_timer", "predicted_timer"]  # fmt: skip
