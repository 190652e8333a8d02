"""Where an artifact is timed, and whether it is also checked where it runs.

`choose_probe` picks one of four places for a compress run's target:
- `HostOrt`: the target is this machine: ONNX Runtime here, measured.
- `LocalTrt`: edgekd runs on the target's GPU (a Jetson, or the desktop GPU a profile
  describes) with TensorRT: engines are built and timed here, and their accuracy checked.
- `RemoteDevice`: `--device user@host`: trtexec there for TensorRT targets, the agent with
  ONNX Runtime for CPU targets; the built artifact's accuracy is checked there too.
- `Predicted`: none of these: the target's cost model, and every record says so.

Every probe returns latency records of one shape (a `LatencyReport` dict: min/p50/p90/p99/mean
ms, throughput, batch, threads, warm-up, iterations, runtime, measured).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekd.latency.cost import LatencyPrediction, predict_latency
from edgekd.targets import TargetProfile

LATENCY_KEYS = ("min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "warmup", "iters")


def agent_latency(r: dict, runtime: str, threads: int) -> dict:
    """The agent's timing (edgekd/agent.py `profile`) as a measured latency record."""
    return {k: r[k] for k in LATENCY_KEYS} | {
        "throughput_ips": 1e3 / r["mean_ms"],
        "batch": 1,
        "threads": threads,
        "runtime": runtime,
        "measured": True,
    }


def predicted_latency(pred: LatencyPrediction, target: TargetProfile) -> dict:
    """A cost-model prediction in the shape of a measured latency record, labelled predicted."""
    t = pred.total_ms
    return {
        "min_ms": t, "p50_ms": t, "p90_ms": t, "p99_ms": t, "mean_ms": t,
        "throughput_ips": 1e3 / t, "batch": 1, "threads": target.threads or 0,
        "warmup": 0, "iters": 0,
        "runtime": f"predicted: {target.runtime} {target.runtime_version} on "
        f"{target.name} ({pred.precision})",
        "measured": False,
        "range_ms": list(pred.range_ms) if pred.range_ms else None,
        "range_coverage": pred.range_coverage,
    }  # fmt: skip


class Probe:
    """Times artifacts on one place; `runs` keeps what each timing left there, by stem."""

    source = ""  # how the report names where latency comes from
    on_device = False  # the artifact as built there is checked for accuracy too
    where = ""  # where that check runs, for progress lines ("on user@jetson")

    def __init__(self, target: TargetProfile, shape: tuple[int, ...]) -> None:
        self.target, self.shape = target, shape
        self.runs: dict[str, dict] = {}  # stem -> {"model": engine or ONNX, "facts", "log"}

    def latency(self, path: Path, precision: str, stem: str) -> dict:
        raise NotImplementedError

    def device_accuracy(self, stem: str, val, labels: np.ndarray) -> dict | None:
        """{"top1", "predictions", "runtime"} of the artifact timed as `stem`, run where it
        was built; None where nothing is built elsewhere (host, predicted)."""
        return None

    def facts(self) -> dict | None:
        """What the device said about itself (model, L4T, power mode, clocks), if anything."""
        return next((d["facts"] for d in self.runs.values() if d.get("facts")), None)


class HostOrt(Probe):
    def __init__(self, target, shape, *, threads: int, warmup: int, iters: int) -> None:
        super().__init__(target, shape)
        self.prof = dict(threads=threads, warmup=warmup, iters=iters)
        self.source = f"measured on this machine ({target.name})"

    def latency(self, path: Path, precision: str, stem: str) -> dict:
        from edgekd.backends import onnxruntime as ort_backend

        return ort_backend.profile(path, self.shape, **self.prof).to_dict()


class Predicted(Probe):
    def __init__(self, target, shape) -> None:
        super().__init__(target, shape)
        self.source = (
            f"predicted by the cost model for {target.name} ({target.runtime} "
            f"{target.runtime_version}), not measured"
        )

    def latency(self, path: Path, precision: str, stem: str) -> dict:
        # TensorRT builds float layers of a Q/DQ graph in FP16 when it can (--int8 --fp16)
        trt = self.target.runtime == "tensorrt"
        return predicted_latency(predict_latency(path, self.target, precision if trt else None),
                                 self.target)  # fmt: skip


class LocalTrt(Probe):
    on_device = True

    def __init__(self, target, shape, *, device_dir: Path, warmup: int, iters: int) -> None:
        super().__init__(target, shape)
        self.device_dir, self.warmup, self.iters = Path(device_dir), warmup, iters
        self.source = f"measured with TensorRT on this machine's GPU ({target.name})"
        self.where = "as a TensorRT engine here"

    def latency(self, path: Path, precision: str, stem: str) -> dict:
        """Build the engine here and time it (batch 1, after warm-up) with the agent's runner."""
        from edgekd import agent
        from edgekd.backends import tensorrt as trt_backend

        engine = self.device_dir / f"{stem}.engine"
        trt_backend.build_engine(path, engine, self.target, precision, self.shape)
        self.runs[stem] = {"model": engine, "facts": agent.facts()}
        r = agent.profile(str(engine), 1, self.warmup, self.iters)
        return agent_latency(r, f"{r['runtime']} on this machine's GPU", threads=0)

    def device_accuracy(self, stem: str, val, labels: np.ndarray) -> dict | None:
        from edgekd.backends import tensorrt as trt_backend

        pred = trt_backend.predict(self.runs[stem]["model"], val).argmax(1)
        return {"top1": float((pred == labels).mean() * 100), "predictions": pred,
                "runtime": "tensorrt"}  # fmt: skip


class RemoteDevice(Probe):
    on_device = True

    def __init__(self, target, shape, *, runner, device_dir: Path, threads: int, warmup: int,
                 iters: int, trtexec: str, python: str) -> None:  # fmt: skip
        super().__init__(target, shape)
        self.runner, self.device_dir = runner, Path(device_dir)
        self.threads, self.warmup, self.iters = threads, warmup, iters
        self.trtexec, self.python = trtexec, python
        self.source = f"measured on the device {runner.dest} ({target.name})"
        self.where = f"on {runner.dest}"

    def latency(self, path: Path, precision: str, stem: str) -> dict:
        """trtexec there for TensorRT targets, the agent with ONNX Runtime for CPU targets."""
        from edgekd.latency import remote as rmt

        if self.target.runtime == "tensorrt":
            from edgekd.backends.trt_build import onnx_facts, trtexec_args
            from edgekd.latency.trtexec import trtexec_latency

            args = trtexec_args(self.target, precision, self.shape, onnx=onnx_facts(path))
            build = rmt.trtexec_remote(
                self.runner, path, args,
                self.device_dir, stem=stem, trtexec=self.trtexec,
            )  # fmt: skip
            self.runs[stem] = {"model": build.engine, "log": build.log}
            if build.layer_profile is not None:  # measured layers feed the target's cost model
                from edgekd.latency.layer_table import learn_from_trtexec

                learn_from_trtexec(path, self.target, precision, build.layer_profile)
            return trtexec_latency(build.result, f"measured on {self.runner.dest} with trtexec")
        r = rmt.profile_onnx_remote(
            self.runner, path, threads=self.target.threads or self.threads, warmup=self.warmup,
            iters=self.iters, python=self.python,
        )  # fmt: skip
        facts = (r.get("facts") or {}) | {"machine": r.get("machine"), "cpus": r.get("cpu_count")}
        self.runs[stem] = {"model": path, "facts": facts}
        return agent_latency(r, r["runtime"], threads=r["threads"])

    def device_accuracy(self, stem: str, val, labels: np.ndarray) -> dict | None:
        from edgekd.data import stack_inputs
        from edgekd.latency.remote import accuracy_remote

        x, _ = stack_inputs(val)
        got = accuracy_remote(self.runner, Path(self.runs[stem]["model"]), x.numpy(), labels,
                              python=self.python)  # fmt: skip
        return got | {"predictions": np.asarray(got["predictions"])}


def choose_probe(
    target: TargetProfile, shape: tuple[int, ...], *, device_dir: Path, threads: int = 1,
    warmup: int = 50, iters: int = 300, remote: str | None = None,
    ssh_options: tuple[str, ...] = (), trtexec: str = "", python: str = "python3",
) -> Probe:  # fmt: skip
    """Where a compress run's artifacts for `target` are timed (see the module docstring)."""
    if remote is not None:
        from edgekd.latency.remote import RemoteRunner

        return RemoteDevice(target, shape, runner=RemoteRunner(remote, list(ssh_options)),
                            device_dir=device_dir, threads=threads, warmup=warmup, iters=iters,
                            trtexec=trtexec, python=python)  # fmt: skip
    if target.runtime == "tensorrt":
        from edgekd.backends import tensorrt as trt_backend

        if trt_backend.available()[0] and trt_backend.this_gpu()[1] == target.compute_capability:
            return LocalTrt(target, shape, device_dir=device_dir, warmup=warmup, iters=iters)
    if target.measured:
        return HostOrt(target, shape, threads=threads, warmup=warmup, iters=iters)
    return Predicted(target, shape)
