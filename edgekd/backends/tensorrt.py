"""TensorRT engines through TensorRT's Python API, where `tensorrt` imports and a GPU is
present (on the Jetson itself, or a desktop GPU target). `import edgekd` never needs TensorRT:
this module imports it only inside its functions.

- `build_engine`: parse the ONNX, build with the typing and flags `trt_build.build_mode` gives
  for the TensorRT installed here (strongly typed on 10.x GPU builds of INT8 Q/DQ and FP16
  ONNX; INT8/FP16 builder flags on 8.x, for DLA, and for an FP32 ONNX asked for FP16), the
  timing cache kept
  next to the engine, workspace from the profile, DLA core with GPU fallback when asked, an
  optimization profile for the dynamic batch; serialize the engine and write
  `<engine>.json` with the TensorRT version, compute capability and device name.
- `load_engine`: refuse an engine whose recorded TensorRT version or GPU differ from this
  machine's (engines are not portable) with one clear line, then deserialize it.
- `predict`: run the engine over a dataset (for accuracy validation), via the agent's
  cuda-python runner.

Not executed on edgekd's CI machine (no GPU, no TensorRT): its tests skip there and say so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgekd._io import atomic_path, write_json
from edgekd.agent import import_cudart
from edgekd.backends.trt_build import build_mode, onnx_facts, workspace_mb
from edgekd.errors import InputError, StageError
from edgekd.export.onnx_export import INPUT_NAME
from edgekd.targets import TargetProfile
from edgekd.trt_versions import parse_version


def available() -> tuple[bool, str]:
    """(True, "") when TensorRT and a CUDA GPU are usable here, else (False, why not)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False, "the tensorrt Python package is not installed"
    try:
        cudart = import_cudart()
    except ImportError as e:
        return False, str(e)
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess or count < 1:
        return False, f"no CUDA GPU visible ({getattr(err, 'name', err)})"
    return True, ""


@dataclass
class EngineMeta:
    tensorrt: str
    compute_capability: str
    device: str
    precision: str
    target: str
    dla_core: int | None = None
    engine_precision: str | None = None  # e.g. "int8 (float layers fp32)" (build_mode.label)


def this_gpu() -> tuple[str, str]:
    """(device name, compute capability) of GPU 0."""
    cudart = import_cudart()
    err, props = cudart.cudaGetDeviceProperties(0)
    if err != cudart.cudaError_t.cudaSuccess:
        raise StageError("cannot read the GPU's properties", value=str(err))
    name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
    return name.strip("\x00 "), f"{props.major}.{props.minor}"


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    target: TargetProfile,
    precision: str,
    input_shape: tuple[int, int, int],
    *,
    max_batch: int = 1,
    dla_core: int | None = None,
) -> EngineMeta:
    """Build and serialize an engine for `precision`; returns what was recorded with it."""
    import tensorrt as trt

    ok, why = available()
    if not ok:
        raise StageError("cannot build a TensorRT engine here", value=why)
    engine_path = Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # the typing and flags trtexec would get (trt_build.build_mode), for the TensorRT here
    here = parse_version(trt.__version__)
    onnx = onnx_facts(onnx_path)
    mode = build_mode(target, precision, onnx, dla=dla_core is not None, version=here)
    strongly_typed = mode.typing == "strong" and precision != "fp32"
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    elif here[0] < 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # reads external data (ONNX over 2 GB)
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise StageError(
            "TensorRT could not parse the ONNX",
            value=errors[0] if errors else str(onnx_path),
            fix="run `edgekd lint` on it for the TensorRT version of the target",
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb(target) << 20)
    if "--fp16" in mode.flags:
        config.set_flag(trt.BuilderFlag.FP16)
    if "--int8" in mode.flags:
        config.set_flag(trt.BuilderFlag.INT8)  # explicit Q/DQ: no calibrator
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache_file = engine_path.with_name("timing.cache")
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.exists() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):  # another GPU's or version's
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    if onnx.dynamic_batch:  # a static ONNX takes no profile (trtexec refuses shapes for it)
        profile = builder.create_optimization_profile()
        one = (1, *input_shape)
        profile.set_shape(INPUT_NAME, one, one, (max_batch, *input_shape))
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise StageError("TensorRT failed to build the engine", value=str(onnx_path))
    with atomic_path(engine_path) as tmp:
        Path(tmp).write_bytes(bytes(serialized))
    with atomic_path(cache_file) as tmp:
        Path(tmp).write_bytes(bytes(config.get_timing_cache().serialize()))
    name, cc = this_gpu()
    meta = EngineMeta(trt.__version__, cc, name, precision, target.name, dla_core, mode.label)
    write_json(engine_path.with_suffix(engine_path.suffix + ".json"), asdict(meta))
    return meta


def check_engine_meta(meta: dict, trt_version_here: str, gpu_here: tuple[str, str]) -> None:
    """Refuse an engine built with another TensorRT or on another GPU (one line)."""
    name, cc = gpu_here
    if meta.get("tensorrt") != trt_version_here:
        raise InputError(
            "engine was built with another TensorRT version",
            value=f"{meta.get('tensorrt')} vs {trt_version_here} here",
            fix="rebuild it on this machine (build/build_engine.sh)",
        )
    if meta.get("compute_capability") != cc or meta.get("device") != name:
        raise InputError(
            "engine was built for another GPU",
            value=f"{meta.get('device')} (sm {meta.get('compute_capability')}) vs {name} "
            f"(sm {cc}) here",
            fix="rebuild it on this machine (build/build_engine.sh)",
        )


def load_engine(engine_path: str | Path):
    """Deserialize an engine after checking its recorded versions against this machine."""
    import tensorrt as trt

    engine_path = Path(engine_path)
    meta_path = engine_path.with_suffix(engine_path.suffix + ".json")
    if not meta_path.exists():
        raise InputError(
            "engine has no edgekd metadata", value=str(meta_path), fix="build it with edgekd"
        )
    check_engine_meta(json.loads(meta_path.read_text()), trt.__version__, this_gpu())
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise InputError("TensorRT could not deserialize the engine", value=str(engine_path))
    return engine


def predict(engine_path: str | Path, ds, batch_size: int = 1) -> np.ndarray:
    """Logits of the engine on every sample of `ds` (in order)."""
    from edgekd.agent import TrtModel
    from edgekd.data import loader

    load_engine(engine_path)  # the version / GPU check
    model = TrtModel(str(engine_path))
    outs = [model(x.numpy()) for x, _ in loader(ds, batch_size)]
    return np.concatenate(outs)
