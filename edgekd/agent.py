"""edgekd's device agent: time a model, measure its accuracy and read device facts *on the
device*, with nothing but numpy and the runtime there (ONNX Runtime, or TensorRT's Python
bindings on a Jetson). No other edgekd module is imported, so this one file can be copied to
a device and run as `python3 edgekd_agent.py ...` (or `python3 -m edgekd.agent ...` where
edgekd is installed):

    profile MODEL [--threads N] [--warmup W] [--iters I] --json   latency, ms
    accuracy MODEL X.npy Y.npy [--threads N] --json               top-1 and predictions
    facts --json                                                  Jetson model, L4T, power mode

MODEL is an .onnx file (ONNX Runtime on the CPU) or a TensorRT .engine/.plan (TensorRT's
Python bindings with cuda-python; Jetson only). Output is one JSON object on stdout; a
failure prints `error: ...` on stderr and exits 1.
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


class TrtModel:
    """A serialized TensorRT engine run through TensorRT's Python API and cuda-python."""

    def __init__(self, path: str) -> None:
        import numpy as np
        import tensorrt as trt
        from cuda import cudart  # cuda-python

        self.np, self.cudart = np, cudart
        logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {path} (other version or GPU?)")
        self.ctx = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = trt.TensorIOMode.INPUT
        self.inp = next(n for n in names if self.engine.get_tensor_mode(n) == mode)
        self.out = next(n for n in names if self.engine.get_tensor_mode(n) != mode)
        self.shape = [d if d > 0 else 1 for d in self.engine.get_tensor_shape(self.inp)]
        self.runtime = f"tensorrt {trt.__version__}"
        _, self.stream = cudart.cudaStreamCreate()

    def __call__(self, x):
        np, cudart = self.np, self.cudart
        x = np.ascontiguousarray(x, dtype=np.float32)
        self.ctx.set_input_shape(self.inp, x.shape)
        out_shape = tuple(self.ctx.get_tensor_shape(self.out))
        y = np.empty(out_shape, dtype=np.float32)
        _, d_in = cudart.cudaMalloc(x.nbytes)
        _, d_out = cudart.cudaMalloc(y.nbytes)
        try:
            kind_h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            kind_d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            cudart.cudaMemcpy(d_in, x.ctypes.data, x.nbytes, kind_h2d)
            self.ctx.set_tensor_address(self.inp, d_in)
            self.ctx.set_tensor_address(self.out, d_out)
            self.ctx.execute_async_v3(self.stream)
            cudart.cudaStreamSynchronize(self.stream)
            cudart.cudaMemcpy(y.ctypes.data, d_out, y.nbytes, kind_d2h)
        finally:
            cudart.cudaFree(d_in)
            cudart.cudaFree(d_out)
        return y


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
    for _ in range(iters):
        t0 = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return {
        **summarize(times),
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
    correct = sum(int(p == t) for p, t in zip(preds, y.tolist(), strict=True))
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
    args = ap.parse_args(argv)
    try:
        if args.cmd == "profile":
            if args.iters < 1:
                raise ValueError("--iters must be >= 1")
            result = profile(args.model, args.threads, args.warmup, args.iters)
        elif args.cmd == "accuracy":
            result = accuracy(args.model, args.x, args.y, args.threads)
        else:
            result = facts()
    except ImportError as e:
        sys.stderr.write(f"error: missing on the device: {e.name or e} (pip install it there)\n")
        return 1
    except Exception as e:  # one line for the host to relay
        sys.stderr.write(f"error: {type(e).__name__}: {' '.join(str(e).split())[:300]}\n")
        return 1
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
