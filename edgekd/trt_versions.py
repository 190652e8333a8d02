"""What each TensorRT version does, in one table: flags, typing, opsets, DLA, what "Latency" means.

`trt_build` (trtexec command lines), `export.lint` (opset ceilings) and `latency.trtexec` (log
headers) read it. Every row cites the source it rests on; the sources are NVIDIA/TensorRT and
onnx/onnx-tensorrt at the named tags, as audited in shared/reference/tensorrt/audit-2026-12.md
(sections 1c, 2 and 3). Where that audit was checked against the trtexec `--help` lists of 8.6,
10.3 and 11.1 (shared/reference/tensorrt/trtexec-options-*.txt), tests/backends/
test_trt_versions.py re-checks every flag edgekd emits against those lists.
"""

from __future__ import annotations

from dataclasses import dataclass

Version = tuple[int, int]


@dataclass(frozen=True)
class TrtFacts:
    """The facts of one TensorRT (major, minor) that edgekd's command lines depend on."""

    version: Version
    strongly_typed: bool  # `--stronglyTyped` exists and edgekd builds GPU engines with it
    weak_precision_flags: bool  # `--int8` / `--fp16` exist (removed in 11.0)
    mem_pool_size: bool  # `--memPoolSize=workspace:N` (8.4+); `--workspace=N` before
    percentile_list: bool  # `--percentile=50,90,99` (8.5+); one value before
    dla: bool  # DLA engines can be built (absent in 11.0-11.3)
    latency_includes_transfers: bool  # trtexec's "Latency" = H2D + compute + D2H by default
    build_tag_in_header: bool  # `&&&& ... [TensorRT vN] [b<build>] # cmd` (10.4+)
    opset_max: int  # highest ONNX opset the ONNX parser takes
    opset_min: int


def facts(version: Version) -> TrtFacts:
    """The facts of TensorRT `version` (major, minor).

    Sources (audit section in brackets):
    - `--stronglyTyped`: sampleOptions.cpp@v10.3.0:1231, a no-op in 11 (@v11.1:2752) [1c]
    - `--int8`/`--fp16`: sampleOptions.cpp@release/8.5:844-845, absent from @v11.0 [1c]
    - `--memPoolSize`: 8.4+, `--workspace` gone from @v10.3.0 [1c]
    - percentile lists: sampleOptions.cpp@release/8.5:1125-1135 [1c]
    - DLA: "Working with DLA" 11.4.1 (none in 11.0-11.3) [1a, 4b]
    - transfers: sampleOptions.cpp@v11.1:1684-1696 (off by default; --includeDataTransfers) [2.1]
    - build tag: samples/common/logging.h@v10.4.0:383 [2.2]
    - opsets: onnx-tensorrt docs/operators.md per release: 8.2 up to 13, 8.4-8.6 up to 17,
      10.0 9-20, 10.9 up to 22 (secondary source), 10.15 9-24; TensorRT "ONNX Opset Guide":
      11.x up to 25 [3]
    """
    major, minor = version
    if major >= 11:
        opset_max = 25
    elif major == 10:
        opset_max = 24 if minor >= 15 else 22 if minor >= 9 else 20
    elif (major, minor) >= (8, 4):
        opset_max = 17
    else:
        opset_max = 13
    return TrtFacts(
        version=version,
        strongly_typed=major >= 10,
        weak_precision_flags=major < 11,
        mem_pool_size=version >= (8, 4),
        percentile_list=version >= (8, 5),
        dla=not (major == 11 and minor <= 3),
        latency_includes_transfers=major < 11,
        build_tag_in_header=version >= (10, 4),
        opset_max=opset_max,
        opset_min=9 if major >= 10 else 7,
    )


def parse_version(text: str) -> Version:
    """(major, minor) of a version string such as "10.3" or "8.5.2.2"; (10, 0) if unreadable."""
    parts = (str(text).split(".") + ["0"])[:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return (10, 0)


def weak_typing(version: Version, *, dla: bool = False) -> bool:
    """Whether edgekd builds INT8/FP16 engines weakly typed (`--int8 --fp16` / `--fp16`): on
    8.x, and for DLA on 10.x (trtexec sets FP16 for DLA, which strong typing refuses)."""
    f = facts(version)
    return not f.strongly_typed or (dla and f.weak_precision_flags)


def int8_float_precision(version: Version, float_type: str, *, dla: bool = False) -> str:
    """The precision of the layers an INT8 Q/DQ engine leaves in float: FP16 where edgekd
    builds weakly typed (`weak_typing`), else the ONNX's own float type (strong typing keeps
    what the graph says)."""
    return "fp16" if weak_typing(version, dla=dla) else float_type
