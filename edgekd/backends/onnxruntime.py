"""ONNX Runtime backend (CPU): build an optimized model file, run it, time it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd._io import atomic_path
from edgekd.backends.base import Artifact
from edgekd.data import loader
from edgekd.errors import StageError
from edgekd.latency import LatencyReport, time_calls
from edgekd.latency.measure import measure_steady


def _ort():
    import onnxruntime

    return onnxruntime


def ort_version() -> str:
    return _ort().__version__


def session(
    path: str | Path,
    threads: int = 1,
    *,
    optimized_path: str | Path | None = None,
    level: str = "basic",
):
    """A CPU InferenceSession with `threads` intra-op threads, sequential execution.

    With `optimized_path`, the graph after ORT's `level` rewrites (basic: hardware-independent,
    the file stays portable; extended: also ORT's fusions, e.g. QDQ -> QLinearConv) is saved."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    if optimized_path is not None:
        so.graph_optimization_level = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        }[level]
        so.optimized_model_filepath = str(optimized_path)
    try:
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise StageError(
            "ONNX Runtime cannot load the model",
            value=str(path),
            fix=str(e).strip().splitlines()[0][:200],
        ) from None


def compile_model(onnx_path: Path, out_path: Path, precision: str, target: str) -> Artifact:
    """Write ONNX Runtime's hardware-independent optimized graph of `onnx_path` to `out_path`."""
    with atomic_path(out_path) as tmp:
        session(onnx_path, optimized_path=tmp)
    return Artifact.of(
        out_path, "ort.onnx", precision, target, {"onnxruntime": ort_version(), "provider": "CPU"}
    )


def predict(
    path: str | Path, ds, batch_size: int = 128, threads: int = 1, progress=None
) -> np.ndarray:
    """Logits of the model at `path` on every sample of `ds` (in order). A model with a fixed
    batch dimension (a user's ONNX teacher) runs in batches of that size, the last one padded.
    `progress(done, total)`: called after each batch."""
    sess = session(path, threads)
    name, dtype, fixed = feed(sess)
    batches = loader(ds, fixed or batch_size)
    outs = []
    for i, (x, _) in enumerate(batches):
        outs.append(run_padded(sess, name, x.numpy().astype(dtype, copy=False), fixed))
        if progress is not None:
            progress(i + 1, len(batches))
    return np.concatenate(outs)


def run_padded(sess, name: str, x: np.ndarray, fixed: int | None) -> np.ndarray:
    """The first output (float32) of `sess` on the batch `x` fed as `name`; with a `fixed`
    batch size, in chunks of that size, the last one zero-padded and its padding dropped."""
    if fixed is None:
        return np.asarray(sess.run(None, {name: x})[0], dtype=np.float32)
    outs = []
    for i in range(0, len(x), fixed):
        chunk = x[i : i + fixed]
        n = len(chunk)
        if n < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - n, *x.shape[1:]), x.dtype)])
        outs.append(np.asarray(sess.run(None, {name: chunk})[0][:n], dtype=np.float32))
    return np.concatenate(outs)


def feed(sess) -> tuple[str, type, int | None]:
    """(input name, numpy dtype, fixed batch size or None) of a session's first input."""
    meta = sess.get_inputs()[0]
    dtype = np.float16 if meta.type == "tensor(float16)" else np.float32
    b = meta.shape[0] if meta.shape else None
    return meta.name, dtype, b if isinstance(b, int) and b > 0 else None


def profile(
    path: str | Path,
    input_shape: tuple[int, int, int],
    *,
    threads: int = 1,
    warmup: int = 50,
    iters: int = 300,
    batch: int = 1,
    seed: int = 0,
) -> LatencyReport:
    """Latency of one `sess.run` on a random batch, after warm-up, at `threads` threads (at
    the model's own batch size when it fixes one). Measured again, up to twice, while the
    spread shows other work interfering (`latency.measure.measure_steady`)."""
    sess = session(path, threads)
    name, dtype, fixed = feed(sess)
    batch = fixed or batch
    x = np.random.default_rng(seed).standard_normal((batch, *input_shape)).astype(dtype)
    return measure_steady(lambda: time_calls(
        lambda: sess.run(None, {name: x}),
        warmup=warmup,
        iters=iters,
        batch=batch,
        threads=threads,
        runtime=f"onnxruntime {ort_version()} CPU",
    ))  # fmt: skip
