"""Every trtexec command edgekd generates uses only flags of its TensorRT version's option list.

The option lists are trtexec's `--help` of 8.6, 10.3 and 11.1, reconstructed from
samples/common/sampleOptions.cpp at those tags (copied from shared/reference/tensorrt/; their
headers name the source revision). 8.5 targets (JetPack 5) are checked against the 8.6 list,
the nearest one we have: 8.5 and 8.6 share the options edgekd uses (memPoolSize from 8.4,
percentile lists from 8.5). TensorRT 8.2 (the original Jetson Nano) has no list here; its
commands are checked only for the flags 8.2 is known to lack.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from edgekd.backends.trt_build import OnnxFacts, build_script, trtexec_args
from edgekd.errors import InputError
from edgekd.targets import builtin_profiles
from edgekd.trt_versions import facts

LISTS = Path(__file__).parent / "trtexec_options"


def options(version: str) -> set[str]:
    """Flag names (`--onnx`, `--fp16`, ...) that trtexec `--help` of `version` prints."""
    names = set()
    for line in (LISTS / f"trtexec-options-{version}.txt").read_text().splitlines():
        if line.startswith("Removed:"):
            break  # the 11.1 file ends with a diff against 10.x
        for m in re.finditer(r"(?:^|,\s*)(--[A-Za-z][A-Za-z0-9]*)", line.split("  ")[0]):
            names.add(m.group(1))
    return names


def flag_names(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


TRT_TARGETS = {n: p for n, p in builtin_profiles().items() if p.runtime == "tensorrt"}


def _as_version(profile, version: str):
    return profile.model_copy(update={"runtime_version": version})


def _cases():
    """(target, list version, precision, dla, onnx) for every TensorRT target and precision,
    on its own version and, for the 10.3 ones, as if on 11.1."""
    for name, p in sorted(TRT_TARGETS.items()):
        major_minor = tuple(int(x) for x in p.runtime_version.split(".")[:2])
        lists = {(10, 3): "10.3", (8, 5): "8.6", (8, 6): "8.6"}
        targets = [(p, lists.get(major_minor))]
        if major_minor == (10, 3):
            targets.append((_as_version(p, "11.1.0"), "11.1"))
        for t, lst in targets:
            for prec in t.precisions:
                for dla in (False, True):
                    if dla and (not t.dla_cores or prec == "fp32" or not facts(
                            (int(t.runtime_version.split(".")[0]),
                             int(t.runtime_version.split(".")[1]))).dla):  # fmt: skip
                        continue
                    onnx = OnnxFacts(float_type="fp16" if prec == "fp16" else "fp32",
                                     quantized=prec == "int8")  # fmt: skip
                    tag = f"{name}@{t.runtime_version}-{prec}" + ("-dla" if dla else "")
                    yield pytest.param(t, lst, prec, dla, onnx, id=tag)


@pytest.mark.parametrize("target,listed,precision,dla,onnx", list(_cases()))
def test_every_generated_flag_exists_in_its_version(target, listed, precision, dla, onnx):
    args = trtexec_args(target, precision, (3, 32, 32), dla_core=0 if dla else None, onnx=onnx)
    # the flags trtexec_remote and build_engine.sh put in front
    used = ["--onnx", "--saveEngine", "--exportProfile", "--timingCacheFile", *flag_names(args)]
    if listed is None:  # TensorRT 8.2: no option list here; the flags 8.2 lacks are absent
        assert "--memPoolSize" not in used and "--stronglyTyped" not in used
        assert "--workspace" in used and "--percentile=90" in args
        return
    known = options(listed)
    assert set(used) <= known, sorted(set(used) - known)
    if listed == "11.1":  # removed in 11 (the file's "Removed:" line): never emitted
        assert not {"--int8", "--fp16", "--best"} & set(used)
        assert "--includeDataTransfers" in used  # "Latency" keeps meaning H2D + compute + D2H


def test_the_option_lists_parse():
    assert {"--onnx", "--fp16", "--int8", "--workspace", "--useDLACore"} <= options("8.6")
    assert "--stronglyTyped" in options("10.3") and "--workspace" not in options("10.3")
    assert "--includeDataTransfers" in options("11.1") and "--fp16" not in options("11.1")


def test_dla_on_tensorrt_10_is_weakly_typed():
    nx = TRT_TARGETS["jetson-orin-nx-16gb"]
    dla = trtexec_args(nx, "int8", (3, 32, 32), dla_core=0, onnx=OnnxFacts(quantized=True))
    gpu = trtexec_args(nx, "int8", (3, 32, 32), onnx=OnnxFacts(quantized=True))
    assert "--stronglyTyped" not in dla and {"--int8", "--fp16"} <= set(dla)
    assert "--stronglyTyped" in gpu and "--int8" not in gpu
    with pytest.raises(InputError, match="static shapes"):
        trtexec_args(nx, "int8", (3, 32, 32), dla_core=0, max_batch=4)
    with pytest.raises(InputError, match="no DLA support"):
        trtexec_args(_as_version(nx, "11.1.0"), "int8", (3, 32, 32), dla_core=0)


def test_static_batch_onnx_gets_no_shapes():
    orin = TRT_TARGETS["jetson-orin-nano-8gb"]
    static = trtexec_args(orin, "fp32", (3, 32, 32), onnx=OnnxFacts(dynamic_batch=False))
    assert not any(a.startswith(("--minShapes", "--optShapes", "--maxShapes")) for a in static)
    with pytest.raises(InputError, match="static batch"):
        trtexec_args(orin, "fp32", (3, 32, 32), max_batch=8, onnx=OnnxFacts(dynamic_batch=False))


def test_fp16_from_an_fp32_onnx():
    from edgekd.backends.trt_build import build_mode

    orin = TRT_TARGETS["jetson-orin-nano-8gb"]
    # strongly typed, an FP32 ONNX would be an FP32 engine: 10.x builds it weakly typed
    assert build_mode(orin, "fp16", OnnxFacts(float_type="fp32")).flags == ["--fp16"]
    assert build_mode(orin, "fp16", OnnxFacts(float_type="fp16")).flags == ["--stronglyTyped"]
    with pytest.raises(InputError, match="FP32 engine, not FP16"):
        build_mode(_as_version(orin, "11.1.0"), "fp16", OnnxFacts(float_type="fp32"))
    int8 = build_mode(orin, "int8", OnnxFacts(quantized=True))
    assert int8.label == "int8 (float layers fp32)" and int8.float_precision == "fp32"
    xavier = TRT_TARGETS["jetson-agx-xavier"]
    assert build_mode(xavier, "int8").label == "int8 (float layers fp16)"


def test_the_cost_model_costs_strongly_typed_int8_float_layers_in_fp32():
    from edgekd.latency.graph import resolve_precision

    orin = TRT_TARGETS["jetson-orin-nano-8gb"]
    xavier = TRT_TARGETS["jetson-agx-xavier"]
    assert resolve_precision(orin, "int8", quantized=True) == ("fp32", False)
    assert resolve_precision(orin, "int8", quantized=True, float_type="fp16") == ("fp16", False)
    assert resolve_precision(xavier, "int8", quantized=True) == ("fp16", False)


def test_build_script_with_dla_is_valid_bash_and_picks_weak_typing(tmp_path):
    nx = TRT_TARGETS["jetson-orin-nx-16gb"]
    text = build_script(nx, {"int8": "m.onnx"}, (3, 32, 32),
                        onnx={"int8": OnnxFacts(quantized=True)})  # fmt: skip
    path = tmp_path / "build_engine.sh"
    path.write_text(text)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    fake = tmp_path / "trtexec"
    fake.write_text('#!/bin/sh\necho "$@"\necho "[E] to stderr" >&2\n')
    fake.chmod(0o755)
    base = {"PATH": "/usr/bin:/bin", "TRTEXEC": str(fake)}
    runs = (({}, "--stronglyTyped", "--useDLACore"),
            ({"DLA_CORE": "1"}, "--useDLACore=1", "--stronglyTyped"))  # fmt: skip
    for env, want, not_want in runs:
        run = subprocess.run(["bash", str(path)], capture_output=True, text=True,
                             env={**base, **env})  # fmt: skip
        assert run.returncode == 0, run.stderr
        log = (tmp_path / "model-int8.log").read_text()
        assert want in log and not_want not in log and "[E] to stderr" in log  # stderr kept
    bad = subprocess.run(["bash", str(path)], capture_output=True, text=True,
                         env={**base, "DLA_CORE": "7"})  # fmt: skip
    assert bad.returncode == 1 and "DLA_CORE must be 0..1" in bad.stderr
