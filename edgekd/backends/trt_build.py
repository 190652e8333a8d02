"""The exact `trtexec` command that builds an engine for a TensorRT target, and
`build/build_engine.sh`, which runs it on the device without edgekd.

Precision flags (shared/reference/device-specs.md):
- TensorRT 10+: strongly typed builds (`--stronglyTyped`): the ONNX fixes every type, so the
  INT8 Q/DQ ONNX gives INT8 layers (the rest in its float type) and edgekd's FP16 ONNX
  (`export/model-fp16.onnx`, FP16 weights and activations, FP32 input/output) an FP16 engine;
  trtexec refuses --int8/--fp16/--best with it.
- TensorRT 8.x: INT8 Q/DQ -> `--int8 --fp16` (explicit quantization, float layers in FP16);
  FP16 -> `--fp16`.
Workspace: a quarter of the module's memory, at most 2 GiB (`--memPoolSize=workspace:NM`,
TensorRT >= 8.4; `--workspace=N` before). Shapes: the ONNX has a dynamic batch axis; the
engine's optimization profile covers batch 1..max_batch with batch 1 as the optimum.
DLA (targets with DLA cores): `--useDLACore=N --allowGPUFallback`, INT8/FP16 only.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from edgekd._io import write_text
from edgekd.errors import InputError
from edgekd.export.onnx_export import INPUT_NAME
from edgekd.targets import TargetProfile


def trt_version(target: TargetProfile) -> tuple[int, int]:
    parts = (target.runtime_version.split(".") + ["0"])[:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return (10, 0)


def workspace_mb(target: TargetProfile) -> int:
    if target.memory_gb:
        return int(min(2048, target.memory_gb * 1024 / 4))
    return 1024


def precision_flags(target: TargetProfile, precision: str) -> list[str]:
    major, _ = trt_version(target)
    if precision == "int8":
        return ["--stronglyTyped"] if major >= 10 else ["--int8", "--fp16"]
    if precision == "fp16":
        return ["--stronglyTyped"] if major >= 10 else ["--fp16"]
    if precision == "fp32":
        return []
    raise InputError("unknown precision", value=precision, valid=["fp32", "fp16", "int8"])


def trtexec_args(
    target: TargetProfile,
    precision: str,
    input_shape: tuple[int, int, int],
    *,
    max_batch: int = 1,
    dla_core: int | None = None,
) -> list[str]:
    """trtexec flags after --onnx/--saveEngine: precision, shapes, workspace, DLA, timing."""
    if target.runtime != "tensorrt":
        raise InputError(f"target {target.name!r} does not run TensorRT", value=target.runtime)
    major, minor = trt_version(target)
    dims = "x".join(map(str, input_shape))
    args = precision_flags(target, precision)
    args += [
        f"--minShapes={INPUT_NAME}:1x{dims}",
        f"--optShapes={INPUT_NAME}:1x{dims}",
        f"--maxShapes={INPUT_NAME}:{max_batch}x{dims}",
    ]
    ws = workspace_mb(target)
    args.append(
        f"--memPoolSize=workspace:{ws}M" if (major, minor) >= (8, 4) else f"--workspace={ws}"
    )
    if dla_core is not None:
        if not target.dla_cores:
            raise InputError(f"target {target.name!r} has no DLA", value=dla_core)
        if not 0 <= dla_core < target.dla_cores:
            raise InputError(
                "DLA core out of range", value=dla_core, fix=f"use 0..{target.dla_cores - 1}"
            )
        if precision == "fp32":
            raise InputError("DLA runs INT8 or FP16 only", value=precision)
        args += [f"--useDLACore={dla_core}", "--allowGPUFallback"]
    # timing: p90 is edgekd's budget percentile (TensorRT 8.6+ prints several percentiles)
    args += ["--percentile=50,90,99" if (major, minor) >= (8, 6) else "--percentile=90"]
    args += ["--warmUp=500", "--duration=10", "--useSpinWait", "--separateProfileRun"]
    return args


def _comment(text: str) -> str:
    """Text safe inside a `#` comment line: anything but printable ASCII becomes `?`.

    Profiles already refuse control characters (targets.check_plain); this keeps a script
    one command per line whatever a caller hands in."""
    return "".join(ch if " " <= ch <= "~" else "?" for ch in str(text))


def build_script(
    target: TargetProfile,
    onnx_by_precision: dict[str, str],
    input_shape: tuple[int, int, int],
    *,
    max_batch: int = 1,
) -> str:
    """A bash script that builds and times one engine per precision with the device's
    trtexec (paths relative to the script's directory)."""
    jetpack = f", JetPack {_comment(target.jetpack)}" if target.jetpack else ""
    lines = [
        "#!/usr/bin/env bash",
        f"# Build TensorRT engines for {_comment(target.name)} ({_comment(target.description)})",
        f"# with the device's own trtexec (TensorRT {_comment(target.runtime_version)}{jetpack}"
        + "). Written by edgekd; run it on the device:",
        "#   bash build_engine.sh              (TRTEXEC=/path/to/trtexec to override)",
        "# Engines are not portable: build on the device that runs them.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-/usr/src/tensorrt/bin/trtexec}"',
        'if ! command -v "$TRTEXEC" >/dev/null 2>&1; then',
        '  echo "error: trtexec not found at $TRTEXEC; set TRTEXEC=/path/to/trtexec" >&2',
        "  exit 1",
        "fi",
    ]
    if target.dla_cores:
        lines += [
            f"# This device has {target.dla_cores} DLA core(s): DLA_CORE=0 bash build_engine.sh "
            "builds INT8/FP16 engines for DLA core 0 (GPU fallback for unsupported layers).",
            'DLA_CORE="${DLA_CORE:-}"',
        ]
    for precision, onnx in onnx_by_precision.items():
        args = trtexec_args(target, precision, input_shape, max_batch=max_batch)
        stem = f"model-{precision}"
        cmd = [
            '"$TRTEXEC"',
            shlex.quote(f"--onnx={onnx}"),
            shlex.quote(f"--saveEngine={stem}.engine"),
            "--timingCacheFile=timing.cache",
            shlex.quote(f"--exportProfile={stem}.profile.json"),
            *(shlex.quote(a) for a in args),
        ]
        if target.dla_cores and precision != "fp32":
            cmd.append("${DLA_CORE:+--useDLACore=$DLA_CORE --allowGPUFallback}")
        lines += ["", f"echo '== {precision} =='", " \\\n  ".join(cmd) + f" | tee {stem}.log"]
    return "\n".join(lines) + "\n"


def write_build_script(path: Path, *args, **kwargs) -> Path:
    write_text(path, build_script(*args, **kwargs))
    path.chmod(0o755)
    return path
