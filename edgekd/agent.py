"""edgekd's device agent: time a model, measure its accuracy and read device facts *on the
device*, with nothing but numpy and the runtime there (ONNX Runtime, or TensorRT's Python
bindings on a Jetson). No other edgekd module is imported, so this one file can be copied to
a device and run as `python3 edgekd_agent.py ...` (or `python3 -m edgekd.agent ...` where
edgekd is installed):

    profile MODEL [--threads N] [--warmup W] [--iters I] --json   latency, ms
    accuracy MODEL X.npy Y.npy [--threads N] --json               top-1 and predictions
    facts --json                                                  Jetson model, L4T, power mode
    versions --json                   Python, numpy, ONNX Runtime, TensorRT, cuda-python, CUDA

MODEL is an .onnx file (ONNX Runtime on the CPU) or a TensorRT .engine/.plan (TensorRT's
Python bindings, 8.5+, with cuda-python; Jetson only). Output is one JSON object on stdout; a
failure prints `error: ...` on stderr and exits 1.

This file must run on the Python of JetPack 5 (3.8): no syntax or built-ins newer than 3.8
(tests/test_agent.py parses it with feature_version=(3, 8) and looks for 3.9+ calls).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path


def _percentile(sorted_ms: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default) of sorted values."""
    if len(sorted_ms) == 1:
        return sorted_ms[0]
    pos = (len(sorted_ms) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_ms) - 1)
    return sorted_ms[lo] + (sorted_ms[hi] - sorted_ms[lo]) * (pos - lo)


def summarize(times_ms: list[float]) -> dict:
    s = sorted(times_ms)
    return {
        "min_ms": s[0],
        "p50_ms": _percentile(s, 50),
        "p90_ms": _percentile(s, 90),
        "p99_ms": _percentile(s, 99),
        "mean_ms": sum(s) / len(s),
        "iters": len(s),
    }


class OrtModel:
    def __init__(self, path: str, threads: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        inp = self.sess.get_inputs()[0]
        self.name = inp.name
        self.shape = [d if isinstance(d, int) else 1 for d in inp.shape]
        self.runtime = f"onnxruntime {ort.__version__} (CPU, {threads} threads)"

    def __call__(self, x):
        return self.sess.run(None, {self.name: x})[0]


def import_cudart():
    """cuda-python's runtime module: `cuda.bindings.runtime` (cuda-python 12.6+, and the only
    layout in 13.x, which removed `cuda.cudart`), else the old `cuda.cudart` (11.x, 12.x)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError:
            raise ImportError(
                "cuda-python (neither cuda.bindings.runtime nor cuda.cudart imports; "
                "pip install 'cuda-python>=12.2,<13' on JetPack 6, 11.8.x on JetPack 5)",
                name="cuda-python",
            ) from None
    return cudart


def _ok(cudart, result, what: str):
    """The values of a cuda-python call after its error code; RuntimeError naming the call and
    the CUDA error otherwise (cuda-python returns (err, value...) and never raises)."""
    err, rest = result[0], result[1:]
    if err != cudart.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        raise RuntimeError(f"{what} failed: {name}")
    return rest[0] if len(rest) == 1 else rest


def _handle(obj) -> int:
    """The integer handle of a cuda-python object (int() is deprecated in cuda-bindings 13)."""
    try:
        from cuda.bindings.utils import get_cuda_native_handle

        return int(get_cuda_native_handle(obj))
    except (ImportError, TypeError, AttributeError):
        return int(obj)


class TrtModel:
    """A serialized TensorRT engine run through TensorRT's Python API and cuda-python.

    Device buffers are allocated once per input shape and reused; every CUDA call's error code
    is checked. `__call__` copies in, runs and copies out (what trtexec's "Latency" measures);
    `gpu_times` times the engine alone with CUDA events around `execute_async_v3` (what
    trtexec's "GPU Compute Time" measures)."""

    def __init__(self, path: str) -> None:
        import numpy as np
        import tensorrt as trt

        cudart = import_cudart()
        version = tuple(int(p) for p in trt.__version__.split(".")[:2])
        if version < (8, 5):
            raise RuntimeError(
                f"TensorRT {trt.__version__} is too old for edgekd's agent: it needs 8.5+ "
                "(the named I/O tensor API: num_io_tensors, set_tensor_address)"
            )
        self.np, self.cudart, self.trt = np, cudart, trt
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {path} (other version or GPU?)")
        self.ctx = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inp = next(n for n in names if self.engine.get_tensor_mode(n) == mode)
        self.out = next(n for n in names if self.engine.get_tensor_mode(n) != mode)
        self.in_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.inp)))
        self.out_dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(self.out)))
        if self.out_dtype.kind != "f" or self.in_dtype.kind != "f":
            raise RuntimeError(
                f"the engine's input/output are {self.in_dtype}/{self.out_dtype}; edgekd's "
                "agent runs engines with float input and logits"
            )
        self.shape = [d if d > 0 else 1 for d in self.engine.get_tensor_shape(self.inp)]
        self.runtime = f"tensorrt {trt.__version__}"
        self.stream = _ok(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._bufs: dict = {}  # input shape -> (device in, device out, host out)

    def _buffers(self, shape: tuple):
        if shape not in self._bufs:
            np, cudart = self.np, self.cudart
            if not self.ctx.set_input_shape(self.inp, shape):
                raise RuntimeError(f"the engine does not take input shape {list(shape)}")
            out_shape = tuple(self.ctx.get_tensor_shape(self.out))
            host_out = np.empty(out_shape, dtype=self.out_dtype)
            n_in = int(np.prod(shape)) * self.in_dtype.itemsize
            d_in = _ok(cudart, cudart.cudaMalloc(n_in), "cudaMalloc")
            d_out = _ok(cudart, cudart.cudaMalloc(host_out.nbytes), "cudaMalloc")
            self._bufs[shape] = (d_in, d_out, host_out)
            self._set_shape = shape
        elif getattr(self, "_set_shape", None) != shape:
            self.ctx.set_input_shape(self.inp, shape)
            self._set_shape = shape
        return self._bufs[shape]

    def _enqueue(self, d_in, d_out) -> None:
        self.ctx.set_tensor_address(self.inp, int(d_in))
        self.ctx.set_tensor_address(self.out, int(d_out))
        if not self.ctx.execute_async_v3(_handle(self.stream)):
            raise RuntimeError("execute_async_v3 failed (see TensorRT's log above)")

    def __call__(self, x):
        np, cudart = self.np, self.cudart
        x = np.ascontiguousarray(x, dtype=self.in_dtype)
        d_in, d_out, host_out = self._buffers(tuple(x.shape))
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _ok(cudart, cudart.cudaMemcpyAsync(d_in, x.ctypes.data, x.nbytes, h2d, self.stream),
            "cudaMemcpyAsync H2D")  # fmt: skip
        self._enqueue(d_in, d_out)
        _ok(cudart, cudart.cudaMemcpyAsync(host_out.ctypes.data, d_out, host_out.nbytes, d2h,
                                           self.stream), "cudaMemcpyAsync D2H")  # fmt: skip
        _ok(cudart, cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")
        return host_out.copy()

    def gpu_times(self, x, warmup: int, iters: int) -> list[float]:
        """Milliseconds of the engine alone per run, from CUDA events on its stream."""
        cudart = self.cudart
        x = self.np.ascontiguousarray(x, dtype=self.in_dtype)
        self(x)  # buffers allocated and the input on the device
        d_in, d_out, _ = self._buffers(tuple(x.shape))
        start = _ok(cudart, cudart.cudaEventCreate(), "cudaEventCreate")
        end = _ok(cudart, cudart.cudaEventCreate(), "cudaEventCreate")
        times = []
        try:
            for i in range(warmup + iters):
                _ok(cudart, cudart.cudaEventRecord(start, self.stream), "cudaEventRecord")
                self._enqueue(d_in, d_out)
                _ok(cudart, cudart.cudaEventRecord(end, self.stream), "cudaEventRecord")
                _ok(cudart, cudart.cudaEventSynchronize(end), "cudaEventSynchronize")
                ms = _ok(cudart, cudart.cudaEventElapsedTime(start, end), "cudaEventElapsedTime")
                if i >= warmup:
                    times.append(float(ms))
        finally:
            cudart.cudaEventDestroy(start)
            cudart.cudaEventDestroy(end)
        return times

    def close(self) -> None:
        for d_in, d_out, _ in self._bufs.values():
            self.cudart.cudaFree(d_in)
            self.cudart.cudaFree(d_out)
        self._bufs.clear()


def open_model(path: str, threads: int):
    if path.endswith((".engine", ".plan", ".trt")):
        return TrtModel(path)
    return OrtModel(path, threads)


def profile(path: str, threads: int, warmup: int, iters: int) -> dict:
    import numpy as np

    model = open_model(path, threads)
    x = np.random.default_rng(0).standard_normal(model.shape).astype(np.float32)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(iters):  # host latency: copy in, run, copy out (buffers preallocated)
        t0 = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t0) * 1e3)
    extra = {}
    if isinstance(model, TrtModel):
        extra["gpu_compute"] = summarize(model.gpu_times(x, min(warmup, 50), iters))
        model.close()
    return {
        **summarize(times),
        **extra,
        "warmup": warmup,
        "batch": model.shape[0],
        "threads": threads,
        "runtime": model.runtime,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "facts": facts(),
    }


def accuracy(path: str, x_path: str, y_path: str, threads: int, batch: int = 1) -> dict:
    import numpy as np

    model = open_model(path, threads)
    x = np.load(x_path).astype(np.float32)
    y = np.load(y_path)
    preds = []
    for i in range(0, len(x), batch):
        preds.extend(np.asarray(model(x[i : i + batch])).argmax(axis=1).tolist())
    if len(preds) != len(y):  # (no zip(strict=True): this file runs on Python 3.8)
        raise ValueError(f"{len(preds)} predictions for {len(y)} labels")
    correct = sum(int(p == t) for p, t in zip(preds, y.tolist()))  # noqa: B905
    return {
        "top1": 100.0 * correct / len(y),
        "n": len(y),
        "predictions": preds,
        "runtime": model.runtime,
    }


# -- device facts (Jetson): parsers take text so they can be tested off the device


def parse_l4t_release(text: str) -> str | None:
    """'# R35 (release), REVISION: 4.1, GCID: ...' -> '35.4.1'."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2)}" if m else None


def parse_power_mode(text: str) -> str | None:
    """`nvpmodel -q` output ('NV Power Mode: MAXN' then the mode id) -> 'MAXN'."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    return m.group(1) if m else None


def clocks_fixed(devfreq_dirs: list[Path]) -> bool | None:
    """True when every GPU devfreq domain has min_freq == max_freq (what `jetson_clocks`
    sets); None when there is no such domain to read."""
    seen = False
    for d in devfreq_dirs:
        try:
            lo = int((d / "min_freq").read_text())
            hi = int((d / "max_freq").read_text())
        except (OSError, ValueError):
            continue
        seen = True
        if lo != hi:
            return False
    return True if seen else None


def facts(root: str = "/") -> dict:
    """What edgekd records about the device it runs on (empty values off a Jetson)."""
    base = Path(root)
    out: dict = {"jetson": False, "platform": platform.platform()}
    model_file = base / "proc/device-tree/model"
    release_file = base / "etc/nv_tegra_release"
    try:
        model = model_file.read_text(errors="replace").strip("\x00\n ")
    except OSError:
        model = None
    try:
        release = parse_l4t_release(release_file.read_text(errors="replace"))
    except OSError:
        release = None
    if model and ("jetson" in model.lower() or release):
        out.update(jetson=True, model=model, l4t=release)
        try:
            q = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10)
            out["power_mode"] = parse_power_mode(q.stdout)
        except (OSError, subprocess.SubprocessError):
            out["power_mode"] = None
        gpu_dirs = [
            p
            for p in (base / "sys/class/devfreq").glob("*")
            if "gpu" in p.name or "gv11b" in p.name or "ga10b" in p.name or "gp10b" in p.name
        ]
        out["clocks_fixed"] = clocks_fixed(gpu_dirs)
    return out


def _dist_version(*names: str):
    """The installed version of the first distribution found among `names` (None if none)."""
    from importlib import metadata  # 3.8+

    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def parse_cuda_version(text: str):
    """'12.6.68' from /usr/local/cuda/version.json, or '12.6' from `nvcc --version`."""
    try:
        data = json.loads(text)
        return str(data["cuda"]["version"])
    except (ValueError, KeyError, TypeError):
        pass
    m = re.search(r"release (\d+\.\d+)", text)
    return m.group(1) if m else None


def versions(root: str = "/") -> dict:
    """What runs here: Python, numpy, ONNX Runtime, TensorRT, cuda-python (and its layout),
    CUDA, plus the Jetson facts (L4T, power mode, clocks). Nothing is required: a missing
    package is None, and `problems` says what it would stop."""
    out: dict = {"python": platform.python_version(), "machine": platform.machine()}
    out["numpy"] = _dist_version("numpy")
    out["onnxruntime"] = _dist_version("onnxruntime", "onnxruntime-gpu")
    try:
        import tensorrt as trt

        out["tensorrt"] = trt.__version__
    except ImportError:
        out["tensorrt"] = None
    out["cuda_python"] = _dist_version("cuda-python", "cuda-bindings")
    try:
        cudart = import_cudart()
        out["cuda_python_layout"] = cudart.__name__
        err, v = cudart.cudaRuntimeGetVersion()
        out["cuda_runtime"] = f"{v // 1000}.{(v % 1000) // 10}" if err == \
            cudart.cudaError_t.cudaSuccess else None  # fmt: skip
    except ImportError:
        out["cuda_python_layout"] = None
        out["cuda_runtime"] = None
    cuda = None
    for f in (
        Path(root) / "usr/local/cuda/version.json",
        Path(root) / "usr/local/cuda/version.txt",
    ):
        try:
            cuda = cuda or parse_cuda_version(f.read_text())
        except OSError:
            continue
    out["cuda"] = cuda
    out["facts"] = facts(root)
    problems = []
    if out["tensorrt"] is None:
        problems.append("no tensorrt Python package: on-device accuracy of engines cannot run")
    if out["cuda_python"] is None:
        problems.append("no cuda-python: on-device accuracy of engines cannot run")
    elif cuda and out["cuda_python"].split(".")[0] != cuda.split(".")[0]:
        problems.append(f"cuda-python {out['cuda_python']} does not match CUDA {cuda}: "
                        f"pip install 'cuda-python=={cuda.split('.')[0]}.*'")  # fmt: skip
    if out["facts"].get("jetson") and out["facts"].get("clocks_fixed") is False:
        problems.append("GPU clocks are not fixed: latency will vary (sudo jetson_clocks)")
    out["problems"] = problems
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="edgekd-agent", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("profile")
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--json", action="store_true")
    a = sub.add_parser("accuracy")
    a.add_argument("model")
    a.add_argument("x")
    a.add_argument("y")
    a.add_argument("--threads", type=int, default=1)
    a.add_argument("--json", action="store_true")
    f = sub.add_parser("facts")
    f.add_argument("--json", action="store_true")
    v = sub.add_parser("versions")
    v.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "profile":
            if args.iters < 1:
                raise ValueError("--iters must be >= 1")
            result = profile(args.model, args.threads, args.warmup, args.iters)
        elif args.cmd == "accuracy":
            result = accuracy(args.model, args.x, args.y, args.threads)
        elif args.cmd == "versions":
            result = versions()
        else:
            result = facts()
    except ImportError as e:
        what = str(e) if "pip install" in str(e) else f"{e.name or e} (pip install it there)"
        sys.stderr.write(f"error: missing on the device: {what}\n")
        return 1
    except Exception as e:  # one line for the host to relay
        sys.stderr.write(f"error: {type(e).__name__}: {' '.join(str(e).split())[:300]}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
