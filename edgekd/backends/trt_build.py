"""The exact `trtexec` command that builds an engine for a TensorRT target, and
`build/build_engine.sh`, which runs it on the device without edgekd.

Every version-dependent choice comes from `trt_versions.facts` (one table, with sources).

Precision (shared/reference/tensorrt/audit-2026-12.md, sections 1a and 1c):
- TensorRT 8.x: INT8 Q/DQ -> `--int8 --fp16` (explicit quantization, float layers in FP16);
  FP16 -> `--fp16`. Weakly typed.
- TensorRT 10.x, GPU: strongly typed (`--stronglyTyped`): the ONNX fixes every type. The INT8
  Q/DQ ONNX gives INT8 layers with its other layers in the ONNX's own float type (FP32 for
  edgekd's Q/DQ export: the engine is labelled "int8 (float layers fp32)"), and the FP16 ONNX an
  FP16 engine. An FP32 ONNX asked for FP16 is built weakly typed with `--fp16` (10.x still has
  the flag; deprecated from 10.12), since strongly typed it would be an FP32 engine. (trtexec
  10.3 warns about and drops `--int8`/`--fp16` given with `--stronglyTyped`: it does not refuse
  them; sampleOptions.cpp@v10.3.0:1232-1247.)
- TensorRT 10.x, DLA: weakly typed (`--int8 --fp16` / `--fp16`, no `--stronglyTyped`): trtexec
  sets kFP16 for DLA builds, which strongly typed networks reject (sampleEngines.cpp@v10.3.0:
  1123-1146; NVIDIA/TensorRT #4228, #4253).
- TensorRT 11.x: every network is strongly typed and `--int8`/`--fp16` are gone, so FP16 needs
  the FP16 ONNX; DLA is absent in 11.0-11.3. "Latency" leaves out host-device transfers unless
  `--includeDataTransfers` is given (sampleOptions.cpp@v11.1:1684-1696): edgekd gives it, so
  its latency means H2D + compute + D2H on every version.
Workspace: a quarter of the module's memory, at most 2 GiB (`--memPoolSize=workspace:NM`,
TensorRT >= 8.4; `--workspace=N` before). Shapes: only for an ONNX whose batch axis is dynamic
(trtexec refuses explicit shapes for a static one: sampleEngines.cpp@v10.3.0:839-845); the
optimization profile covers batch 1..max_batch with batch 1 as the optimum. DLA needs static
shapes (min = opt = max), so max_batch must be 1 there.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from edgekd._io import write_text
from edgekd.errors import InputError
from edgekd.export.onnx_export import INPUT_NAME
from edgekd.targets import TargetProfile
from edgekd.trt_versions import facts, int8_float_precision, parse_version, weak_typing


def trt_version(target: TargetProfile) -> tuple[int, int]:
    return parse_version(target.runtime_version)


def workspace_mb(target: TargetProfile) -> int:
    if target.memory_gb:
        return int(min(2048, target.memory_gb * 1024 / 4))
    return 1024


@dataclass(frozen=True)
class OnnxFacts:
    """What trtexec's command line depends on in the ONNX itself."""

    dynamic_batch: bool = True  # the input's first axis is symbolic
    float_type: str = "fp32"  # fp16 when the graph's weights are FP16
    quantized: bool = False  # holds Q/DQ nodes


def onnx_facts(path: str | Path) -> OnnxFacts:
    """Read the input's batch axis, the float type and whether there are Q/DQ nodes."""
    import onnx

    from edgekd.latency.graph import float_type, is_quantized

    model = onnx.load(str(path), load_external_data=False)
    inp = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    dynamic = bool(inp) and (inp[0].HasField("dim_param") or not inp[0].HasField("dim_value"))
    return OnnxFacts(dynamic, float_type(model), is_quantized(model))


@dataclass(frozen=True)
class BuildMode:
    """How one engine is built: the precision flags and what the engine then holds."""

    flags: list[str]
    typing: str  # strong | weak
    float_precision: str  # the precision of the layers that are not INT8
    label: str  # e.g. "int8 (float layers fp32)"


def build_mode(
    target: TargetProfile,
    precision: str,
    onnx: OnnxFacts | None = None,
    *,
    dla: bool = False,
    version: tuple[int, int] | None = None,
) -> BuildMode:
    """The precision flags for `precision` on `target` (see the module docstring); `version`
    overrides the target's TensorRT version (the Python builder uses the one installed)."""
    f = facts(version or trt_version(target))
    onnx = onnx or OnnxFacts(float_type="fp16" if precision == "fp16" else "fp32")
    if precision not in ("fp32", "fp16", "int8"):
        raise InputError("unknown precision", value=precision, valid=["fp32", "fp16", "int8"])
    if precision == "fp32":
        return BuildMode([], "strong" if f.strongly_typed else "weak", "fp32", "fp32")
    if weak_typing(f.version, dla=dla):
        flags = ["--int8", "--fp16"] if precision == "int8" else ["--fp16"]
        label = "int8 (float layers fp16)" if precision == "int8" else "fp16"
        return BuildMode(flags, "weak", "fp16", label)
    strong = ["--stronglyTyped"] if f.version[0] == 10 else []  # a no-op in 11: left out
    if precision == "fp16" and onnx.float_type != "fp16":
        if f.weak_precision_flags:  # 10.x: FP16 from an FP32 ONNX needs weak typing
            return BuildMode(["--fp16"], "weak", "fp16", "fp16")
        raise InputError(
            f"TensorRT {target.runtime_version} builds every network strongly typed: an FP32 "
            "ONNX gives an FP32 engine, not FP16",
            value="fp16",
            fix="pass the FP16 ONNX (export/model-fp16.onnx), or --precision fp32",
        )
    if precision == "int8":
        fl = int8_float_precision(f.version, onnx.float_type)
        return BuildMode(strong, "strong", fl, f"int8 (float layers {fl})")
    return BuildMode(strong, "strong", "fp16", "fp16")


def trtexec_args(
    target: TargetProfile,
    precision: str,
    input_shape: tuple[int, int, int],
    *,
    max_batch: int = 1,
    dla_core: int | None = None,
    onnx: OnnxFacts | None = None,
) -> list[str]:
    """trtexec flags after --onnx/--saveEngine: precision, shapes, workspace, DLA, timing."""
    if target.runtime != "tensorrt":
        raise InputError(f"target {target.name!r} does not run TensorRT", value=target.runtime)
    f = facts(trt_version(target))
    onnx = onnx or OnnxFacts(float_type="fp16" if precision == "fp16" else "fp32")
    dla = dla_core is not None
    if dla:
        _check_dla(target, precision, dla_core, max_batch)
    args = list(build_mode(target, precision, onnx, dla=dla).flags)
    if onnx.dynamic_batch:
        dims = "x".join(map(str, input_shape))
        args += [
            f"--minShapes={INPUT_NAME}:1x{dims}",
            f"--optShapes={INPUT_NAME}:1x{dims}",
            f"--maxShapes={INPUT_NAME}:{max_batch}x{dims}",
        ]
    elif max_batch > 1:
        raise InputError(
            "the ONNX has a static batch of 1; it cannot build an engine for larger batches",
            value=f"max batch {max_batch}",
            fix="export the ONNX with a dynamic batch axis, or build for batch 1",
        )
    ws = workspace_mb(target)
    args.append(f"--memPoolSize=workspace:{ws}M" if f.mem_pool_size else f"--workspace={ws}")
    if dla:
        args += [f"--useDLACore={dla_core}", "--allowGPUFallback"]
    args += _timing_flags(target)
    return args


def _timing_flags(target: TargetProfile) -> list[str]:
    """p90 is edgekd's budget percentile; 8.5+ print several percentiles; 11.x needs
    --includeDataTransfers for "Latency" to keep meaning H2D + compute + D2H, and has spin
    wait and a separate profile run as defaults (the flags are no-ops there, left out)."""
    f = facts(trt_version(target))
    args = ["--percentile=50,90,99" if f.percentile_list else "--percentile=90"]
    args += ["--warmUp=500", "--duration=10"]
    if f.latency_includes_transfers:
        args += ["--useSpinWait", "--separateProfileRun"]
    else:
        args += ["--includeDataTransfers"]
    return args


def _check_dla(target: TargetProfile, precision: str, dla_core: int, max_batch: int) -> None:
    f = facts(trt_version(target))
    if not target.dla_cores:
        raise InputError(f"target {target.name!r} has no DLA", value=dla_core)
    if not f.dla:
        raise InputError(
            f"TensorRT {target.runtime_version} has no DLA support (11.0-11.3)",
            value=f"DLA core {dla_core}",
            fix="build for the GPU, or use the TensorRT 10.x of JetPack 6",
        )
    if not 0 <= dla_core < target.dla_cores:
        raise InputError("DLA core out of range", value=dla_core,
                         fix=f"use 0..{target.dla_cores - 1}")  # fmt: skip
    if precision == "fp32":
        raise InputError("DLA runs INT8 or FP16 only", value=precision)
    if max_batch != 1:
        raise InputError("DLA needs static shapes (min = opt = max): build for batch 1",
                         value=f"max batch {max_batch}")  # fmt: skip


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
    onnx: dict[str, OnnxFacts] | None = None,
) -> str:
    """A bash script that builds and times one engine per precision with the device's
    trtexec (paths relative to the script's directory). `onnx` gives each precision's
    OnnxFacts (a dynamic-batch FP32 ONNX, FP16 for fp16, when not given). With DLA_CORE=N set,
    devices with DLA build INT8/FP16 engines for that core, weakly typed (see above)."""
    onnx = onnx or {}
    jetpack = f", JetPack {_comment(target.jetpack)}" if target.jetpack else ""
    has_dla = bool(target.dla_cores) and facts(trt_version(target)).dla
    lines = [
        "#!/usr/bin/env bash",
        f"# Build TensorRT engines for {_comment(target.name)} ({_comment(target.description)})",
        f"# with the device's own trtexec (TensorRT {_comment(target.runtime_version)}{jetpack}"
        + "). Written by edgekd; run it on the device:",
        "#   bash build_engine.sh              (TRTEXEC=/path/to/trtexec to override)",
        "# Engines are not portable: build on the device that runs them. Each log holds",
        "# trtexec's stdout and stderr (its [E] and [W] lines go to stderr).",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-/usr/src/tensorrt/bin/trtexec}"',
        'if ! command -v "$TRTEXEC" >/dev/null 2>&1; then',
        '  echo "error: trtexec not found at $TRTEXEC; set TRTEXEC=/path/to/trtexec" >&2',
        "  exit 1",
        "fi",
        'DLA_CORE="${DLA_CORE:-}"',
    ]
    if has_dla:
        lines += [
            f"# This device has {target.dla_cores} DLA core(s): DLA_CORE=0 bash build_engine.sh "
            "builds INT8/FP16 engines for DLA core 0 (GPU fallback for unsupported layers).",
            f'if [ -n "$DLA_CORE" ] && ! [[ "$DLA_CORE" =~ ^[0-{target.dla_cores - 1}]$ ]]; then',
            f'  echo "error: DLA_CORE must be 0..{target.dla_cores - 1}, got $DLA_CORE" >&2',
            "  exit 1",
            "fi",
        ]
    else:
        lines += [
            'if [ -n "$DLA_CORE" ]; then',
            f'  echo "error: no DLA for this target with TensorRT '
            f'{_comment(target.runtime_version)}; unset DLA_CORE" >&2',
            "  exit 1",
            "fi",
        ]
    for precision, path in onnx_by_precision.items():
        facts_p = onnx.get(precision)
        stem = f"model-{precision}"
        head = [
            '"$TRTEXEC"',
            shlex.quote(f"--onnx={path}"),
            shlex.quote(f"--saveEngine={stem}.engine"),
            "--timingCacheFile=timing.cache",
            shlex.quote(f"--exportProfile={stem}.profile.json"),
        ]
        gpu = trtexec_args(target, precision, input_shape, max_batch=max_batch, onnx=facts_p)
        tail = f" 2>&1 | tee {stem}.log"
        gpu_cmd = " \\\n  ".join([*head, *(shlex.quote(a) for a in gpu)]) + tail
        lines += ["", f"echo '== {precision} =='"]
        if has_dla and precision != "fp32" and max_batch == 1:
            dla = trtexec_args(target, precision, input_shape, max_batch=1, dla_core=0,
                               onnx=facts_p)  # fmt: skip
            dla = [a if a != "--useDLACore=0" else "--useDLACore=$DLA_CORE" for a in dla]
            dla_cmd = (
                " \\\n    ".join([*head, *(a if "$DLA_CORE" in a else shlex.quote(a) for a in dla)])
                + tail
            )
            lines += ['if [ -n "$DLA_CORE" ]; then', f"  {dla_cmd}", "else",
                      "  " + gpu_cmd.replace("\n  ", "\n    "), "fi"]  # fmt: skip
        else:
            lines.append(gpu_cmd)
    return "\n".join(lines) + "\n"


def write_build_script(path: Path, *args, **kwargs) -> Path:
    write_text(path, build_script(*args, **kwargs))
    path.chmod(0o755)
    return path
