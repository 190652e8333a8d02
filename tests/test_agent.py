"""The device agent's facts (Jetson model, L4T release, power mode, fixed clocks), read from a
fake device root; its profile/accuracy commands are covered through SSH in
tests/latency/test_remote.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgekd import agent


def test_l4t_release_and_power_mode_parsers():
    line = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64"
    assert agent.parse_l4t_release(line) == "35.4.1"
    assert agent.parse_l4t_release("no release here") is None
    assert agent.parse_power_mode("NV Power Mode: MAXN\n0\n") == "MAXN"
    assert agent.parse_power_mode("NV Power Mode: 15W\n2") == "15W"
    assert agent.parse_power_mode("") is None


def _devfreq(root: Path, name: str, lo: int, hi: int) -> None:
    d = root / "sys/class/devfreq" / name
    d.mkdir(parents=True)
    (d / "min_freq").write_text(f"{lo}\n")
    (d / "max_freq").write_text(f"{hi}\n")


def test_facts_on_a_fake_jetson_root(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("NVIDIA Jetson Orin Nano Developer Kit\x00")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0, GCID: 1\n")
    _devfreq(tmp_path, "17000000.gpu", 306000000, 1020000000)
    f = agent.facts(str(tmp_path))
    assert f["jetson"] and f["model"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert f["l4t"] == "36.4.0"
    assert f["clocks_fixed"] is False  # min != max: jetson_clocks was not run
    assert "power_mode" in f  # nvpmodel is absent here: None


def test_clocks_fixed_when_min_equals_max(tmp_path):
    _devfreq(tmp_path, "17000000.gpu", 1020000000, 1020000000)
    dirs = list((tmp_path / "sys/class/devfreq").glob("*"))
    assert agent.clocks_fixed(dirs) is True
    assert agent.clocks_fixed([]) is None


def test_facts_off_a_jetson(tmp_path):
    assert agent.facts(str(tmp_path))["jetson"] is False


def test_agent_cli_facts_and_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edgekd.agent", "facts", "--json"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "jetson" in json.loads(proc.stdout)
    bad = subprocess.run(
        [sys.executable, "-m", "edgekd.agent", "profile", str(tmp_path / "none.onnx"), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_percentiles_match_numpy():
    import numpy as np

    xs = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    s = agent.summarize(xs)
    assert s["p50_ms"] == np.percentile(xs, 50) and s["p90_ms"] == np.percentile(xs, 90)
    assert s["min_ms"] == 1.0 and s["iters"] == 6


# -- the TensorRT path, off the device: Python 3.8, cuda-python's two layouts, and TrtModel's
#    CUDA calls against fakes of tensorrt and cuda-python injected into sys.modules


def test_the_agent_parses_as_python_3_8_and_calls_nothing_newer():
    import ast

    src = Path(agent.__file__).read_text()
    tree = ast.parse(src, feature_version=(3, 8))  # JetPack 5's Python
    newer = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "zip":
            newer += [
                f"zip(strict=) line {node.lineno}" for k in node.keywords if k.arg == "strict"
            ]
        if isinstance(node, ast.Attribute) and node.attr in ("removeprefix", "removesuffix"):
            newer.append(f"str.{node.attr} line {node.lineno}")  # 3.9
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.BitOr)
            and any(isinstance(x, ast.Dict) for x in (node.left, node.right))
        ):
            newer.append(f"dict | dict line {node.lineno}")  # 3.9
    # built-in generics at run time (list[int] outside annotations) are 3.9+
    notes = [getattr(n, "annotation", None) for n in ast.walk(tree)]
    notes += [getattr(n, "returns", None) for n in ast.walk(tree)]
    annotations = {id(a) for note in notes if note is not None for a in ast.walk(note)}
    generics = ("list", "dict", "tuple", "set", "type")
    for node in ast.walk(tree):
        name = getattr(getattr(node, "value", None), "id", None)
        if isinstance(node, ast.Subscript) and name in generics and id(node) not in annotations:
            newer.append(f"{name}[...] line {node.lineno}")
    assert "from __future__ import annotations" in src  # so annotations are never evaluated
    assert newer == []


def _fake_cuda(layout: str, calls: list, fail: str | None = None):
    """Modules for `cuda.bindings.runtime` (layout "bindings") or `cuda.cudart` ("cudart")."""
    import types

    class Err:
        def __init__(self, name):
            self.name = name

        def __eq__(self, other):
            return isinstance(other, Err) and other.name == self.name

        __hash__ = object.__hash__

    ok = Err("cudaSuccess")
    rt = types.ModuleType("runtime")
    rt.cudaError_t = types.SimpleNamespace(cudaSuccess=ok)
    rt.cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    ptrs = iter(range(1000, 10**6, 1000))

    def call(name, *value):
        def f(*args):
            calls.append(name)
            return (Err("cudaErrorMemoryAllocation") if name == fail else ok, *value)

        return f

    rt.cudaStreamCreate = call("cudaStreamCreate", 7)
    rt.cudaMalloc = lambda n: (calls.append("cudaMalloc") or ok, next(ptrs)) if fail != \
        "cudaMalloc" else (Err("cudaErrorMemoryAllocation"), 0)  # fmt: skip
    rt.cudaFree = call("cudaFree")
    rt.cudaMemcpyAsync = call("cudaMemcpyAsync")
    rt.cudaStreamSynchronize = call("cudaStreamSynchronize")
    rt.cudaEventCreate = call("cudaEventCreate", object())
    rt.cudaEventRecord = call("cudaEventRecord")
    rt.cudaEventSynchronize = call("cudaEventSynchronize")
    rt.cudaEventElapsedTime = call("cudaEventElapsedTime", 0.25)
    rt.cudaEventDestroy = call("cudaEventDestroy")
    cuda = types.ModuleType("cuda")
    mods = {"cuda": cuda}
    if layout == "bindings":
        bindings = types.ModuleType("cuda.bindings")
        bindings.runtime = rt
        cuda.bindings = bindings
        mods |= {"cuda.bindings": bindings, "cuda.bindings.runtime": rt}
    else:
        cuda.cudart = rt
        mods["cuda.cudart"] = rt
    return mods, rt


def _fake_trt(version: str, calls: list):
    import types

    import numpy as np

    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")
    trt.nptype = lambda t: np.float32
    trt.Logger = type("Logger", (), {"WARNING": 1, "__init__": lambda self, level: None})

    class Ctx:
        def set_input_shape(self, name, shape):
            calls.append("set_input_shape")
            self.shape = shape
            return True

        def get_tensor_shape(self, name):
            return (self.shape[0], 10)

        def set_tensor_address(self, name, ptr):
            calls.append(f"address {name}")

        def execute_async_v3(self, stream):
            calls.append("execute_async_v3")
            return stream == 7

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ["input", "logits"][i]

        def get_tensor_mode(self, n):
            return "in" if n == "input" else "out"

        def get_tensor_dtype(self, n):
            return "float"

        def get_tensor_shape(self, n):
            return (-1, 3, 8, 8)

        def create_execution_context(self):
            return Ctx()

    trt.Runtime = lambda logger: types.SimpleNamespace(
        deserialize_cuda_engine=lambda data: Engine()
    )
    return trt


def _trt_model(monkeypatch, tmp_path, layout="bindings", version="10.3.0", fail=None):
    calls: list = []
    mods, _ = _fake_cuda(layout, calls, fail)
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart",
                 "cuda.bindings.utils", "tensorrt"):  # fmt: skip
        monkeypatch.delitem(sys.modules, name, raising=False)
    for name, mod in {**mods, "tensorrt": _fake_trt(version, calls)}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"x")
    return agent.TrtModel(str(engine)), calls


def test_cudart_is_found_in_both_cuda_python_layouts(monkeypatch, tmp_path):
    for layout in ("bindings", "cudart"):  # 12.6+/13.x, and 11.x/12.x
        model, _ = _trt_model(monkeypatch, tmp_path, layout)
        assert model.stream == 7
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)  # neither importable
    try:
        agent.import_cudart()
    except ImportError as e:
        assert "cuda-python" in str(e) and "<13" in str(e)
    else:
        raise AssertionError("import_cudart found a cuda-python that is not there")


def test_buffers_are_allocated_once_per_shape_and_freed(monkeypatch, tmp_path):
    import numpy as np

    model, calls = _trt_model(monkeypatch, tmp_path)
    x = np.zeros((1, 3, 8, 8), np.float32)
    for _ in range(5):
        assert model(x).shape == (1, 10)
    assert calls.count("cudaMalloc") == 2 and calls.count("execute_async_v3") == 5
    assert calls.count("cudaMemcpyAsync") == 10 and calls.count("cudaFree") == 0
    model(np.zeros((4, 3, 8, 8), np.float32))  # a new shape: its own buffers
    assert calls.count("cudaMalloc") == 4
    model.close()
    assert calls.count("cudaFree") == 4


def test_gpu_times_come_from_cuda_events_around_the_enqueue(monkeypatch, tmp_path):
    import numpy as np

    model, calls = _trt_model(monkeypatch, tmp_path)
    times = model.gpu_times(np.zeros((1, 3, 8, 8), np.float32), warmup=2, iters=5)
    assert times == [0.25] * 5
    assert calls.count("cudaEventRecord") == 14 and calls.count("cudaEventElapsedTime") == 7
    i = calls.index("cudaEventRecord")
    assert calls[i:i + 5] == ["cudaEventRecord", "address input", "address logits",
                              "execute_async_v3", "cudaEventRecord"]  # no copies timed  # fmt: skip
    assert calls.count("cudaEventDestroy") == 2


def test_cuda_errors_and_old_tensorrt_are_one_line_errors(monkeypatch, tmp_path):
    import numpy as np
    import pytest

    model, _ = _trt_model(monkeypatch, tmp_path, fail="cudaMalloc")
    with pytest.raises(RuntimeError, match="cudaMalloc failed: cudaErrorMemoryAllocation"):
        model(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(RuntimeError, match="needs 8.5"):
        _trt_model(monkeypatch, tmp_path, version="8.2.1")
