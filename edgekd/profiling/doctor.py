"""`edgekd doctor --device user@host`: is the device ready, before a long run needs it?

Over SSH it runs the agent's `versions` (Python, numpy, ONNX Runtime, TensorRT, cuda-python and
its import layout, CUDA, the Jetson's L4T, power mode and clocks), then builds and times a
tiny engine with the device's trtexec, with the flags edgekd would use for the target (TensorRT
targets), or times a tiny ONNX with ONNX Runtime through the agent (CPU targets). Each check is
a line: ok, warn (the run works, a figure or a step may suffer) or FAIL (the run would stop).
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekd.errors import RemoteError
from edgekd.targets import get_target
from edgekd.trt_versions import parse_version


@dataclass
class Check:
    name: str
    status: str  # ok | warn | FAIL
    detail: str


@dataclass
class DoctorReport:
    target: str
    device: str
    checks: list[Check] = field(default_factory=list)
    versions: dict = field(default_factory=dict)
    latency: dict | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != "FAIL" for c in self.checks)

    def add(self, name: str, status: str, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _tiny_onnx(path: Path) -> Path:
    """A 3x32x32 conv-relu-pool-linear classifier: builds in seconds on any TensorRT."""
    import torch
    from torch import nn

    from edgekd.export import export_onnx

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                        nn.Flatten(), nn.Linear(8, 10)).eval()  # fmt: skip
    export_onnx(net, path, (3, 32, 32))
    return path


def doctor(
    target_name: str,
    device: str,
    *,
    ssh_options: tuple[str, ...] = (),
    trtexec: str | None = None,
    python: str = "python3",
    timeout: float = 600,
    progress=None,
) -> DoctorReport:
    """Check the device for `target_name` (see the module docstring)."""
    from edgekd.latency import remote as rmt

    say = progress or (lambda _m: None)
    target = get_target(target_name)
    runner = rmt.RemoteRunner(device, ssh_options, timeout=timeout)
    rep = DoctorReport(target.name, str(runner.dest))
    say(f"connecting to {runner.dest}")
    try:
        with runner.workdir() as wd:
            agent = rmt._ship_agent(runner, wd)
            rep.versions = rmt._agent_json(runner, python, [agent, "versions", "--json"])
    except RemoteError as e:
        rep.add("ssh and the agent", "FAIL", e.one_line())
        return rep
    v = rep.versions
    rep.add("ssh and the agent", "ok", f"Python {v.get('python')} on {v.get('machine')}")
    if tuple(int(x) for x in str(v.get("python", "0.0")).split(".")[:2]) < (3, 8):
        rep.add("python", "FAIL", f"Python {v.get('python')}: the agent needs 3.8+")
    if v.get("numpy") is None:
        rep.add("numpy", "FAIL", "numpy is missing on the device (pip install numpy)")
    f = v.get("facts") or {}
    if f.get("jetson"):
        rep.add("jetson", "ok", f"{f.get('model')}, L4T {f.get('l4t')}, power mode "
                                f"{f.get('power_mode')}")  # fmt: skip
        if f.get("clocks_fixed") is False:
            rep.add("clocks", "warn", "GPU clocks are not fixed: latency will vary "
                                      "(sudo jetson_clocks)")  # fmt: skip
    if target.runtime == "tensorrt":
        _check_tensorrt(rep, target, v, runner, trtexec or rmt.DEFAULT_TRTEXEC, say)
    else:
        _check_onnxruntime(rep, v, runner, python, say)
    return rep


def _check_tensorrt(rep, target, v, runner, trtexec, say) -> None:
    from edgekd.backends.trt_build import onnx_facts, trtexec_args
    from edgekd.latency import remote as rmt
    from edgekd.latency.trtexec import trtexec_latency

    want = parse_version(target.runtime_version)
    trt = v.get("tensorrt")
    if trt is None:
        rep.add("tensorrt python", "warn", "the tensorrt Python package is missing: engines "
                                           "build (trtexec) but their accuracy is not measured "
                                           "on the device")  # fmt: skip
    elif parse_version(trt) != want:
        rep.add("tensorrt python", "warn", f"TensorRT {trt} here, the target profile says "
                                           f"{target.runtime_version}: pass a profile for "
                                           "this device")  # fmt: skip
    else:
        rep.add("tensorrt python", "ok", f"TensorRT {trt}")
    if v.get("cuda_python") is None:
        rep.add("cuda-python", "warn", "missing: on-device accuracy of engines cannot run "
                "(pip install 'cuda-python>=12.2,<13' on JetPack 6)")  # fmt: skip
    else:
        cuda = v.get("cuda")
        layout = v.get("cuda_python_layout")
        if cuda and v["cuda_python"].split(".")[0] != cuda.split(".")[0]:
            rep.add("cuda-python", "warn", f"cuda-python {v['cuda_python']} does not match "
                                           f"CUDA {cuda}")  # fmt: skip
        else:
            rep.add("cuda-python", "ok", f"{v['cuda_python']} ({layout}), CUDA {cuda}")
    try:
        rmt.check_program(runner, trtexec)
    except RemoteError as e:
        rep.add("trtexec", "FAIL", e.one_line())
        return
    say(f"building and timing a tiny engine with {trtexec}")
    with tempfile.TemporaryDirectory(prefix="edgekd-doctor-") as tmp:
        onnx = _tiny_onnx(Path(tmp) / "tiny.onnx")
        args = trtexec_args(target, "fp32", (3, 32, 32), onnx=onnx_facts(onnx))
        try:
            build = rmt.trtexec_remote(runner, onnx, args, Path(tmp) / "out", stem="tiny",
                                       trtexec=trtexec)  # fmt: skip
        except RemoteError as e:
            rep.add("tiny engine", "FAIL", e.one_line())
            return
        rep.latency = trtexec_latency(build.result, f"on {runner.dest}")
        got = build.result.version
        if got and parse_version(got) != want:
            rep.add("trtexec version", "warn", f"trtexec is TensorRT {got}, the profile says "
                                               f"{target.runtime_version}")  # fmt: skip
        else:
            rep.add("trtexec version", "ok", f"TensorRT {got}")
        notes = f"; {len(build.result.errors)} recoverable [E] line(s)" if build.result.errors \
            else ""  # fmt: skip
        rep.add("tiny engine", "ok", f"built and timed: p90 {rep.latency['p90_ms']:.3f} ms"
                                     f"{notes}")  # fmt: skip


def _check_onnxruntime(rep, v, runner, python, say) -> None:
    from edgekd.latency import remote as rmt

    if v.get("onnxruntime") is None:
        rep.add("onnxruntime", "FAIL", "onnxruntime is missing on the device "
                                       "(pip install onnxruntime)")  # fmt: skip
        return
    rep.add("onnxruntime", "ok", f"ONNX Runtime {v['onnxruntime']}")
    say("timing a tiny model with ONNX Runtime")
    with tempfile.TemporaryDirectory(prefix="edgekd-doctor-") as tmp:
        onnx = _tiny_onnx(Path(tmp) / "tiny.onnx")
        try:
            rep.latency = rmt.profile_onnx_remote(runner, onnx, warmup=10, iters=50,
                                                  python=python)  # fmt: skip
        except RemoteError as e:
            rep.add("tiny model", "FAIL", e.one_line())
            return
    rep.add("tiny model", "ok", f"timed: p90 {rep.latency['p90_ms']:.3f} ms")
