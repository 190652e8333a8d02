"""trtexec commands and build_engine.sh per TensorRT target (flags from the device facts)."""

from __future__ import annotations

import subprocess

import pytest

from edgekd.backends.trt_build import build_mode, build_script, trtexec_args, workspace_mb
from edgekd.errors import InputError
from edgekd.targets import get_target

SHAPE = (3, 224, 224)


def test_orin_tensorrt10_builds_are_strongly_typed():
    orin = get_target("jetson-orin-nano-8gb")
    assert build_mode(orin, "int8").flags == ["--stronglyTyped"]
    assert build_mode(orin, "fp16").flags == ["--stronglyTyped"]  # from the FP16 ONNX
    assert build_mode(orin, "fp32").flags == []
    args = trtexec_args(orin, "int8", SHAPE)
    # trtexec 10.3 warns about and drops --int8/--fp16 given with --stronglyTyped
    # (sampleOptions.cpp@v10.3.0:1232-1247): edgekd never emits them together
    assert "--int8" not in args
    assert "--minShapes=input:1x3x224x224" in args and "--maxShapes=input:1x3x224x224" in args
    assert f"--memPoolSize=workspace:{workspace_mb(orin)}M" in args
    assert workspace_mb(orin) == 2048  # a quarter of 8 GB, capped at 2 GiB
    assert "--percentile=50,90,99" in args


def test_xavier_tensorrt85_uses_int8_fp16_flags_and_a_percentile_list():
    xavier = get_target("jetson-agx-xavier")
    assert xavier.runtime_version.startswith("8.5")
    args = trtexec_args(xavier, "int8", SHAPE, max_batch=8)
    assert args[:2] == ["--int8", "--fp16"]
    # 8.5 parses percentile lists (sampleOptions.cpp@release/8.5:1125-1135)
    assert "--maxShapes=input:8x3x224x224" in args and "--percentile=50,90,99" in args
    nano = get_target("jetson-nano")  # 8.2: one percentile
    assert "--percentile=90" in trtexec_args(nano, "fp16", SHAPE)


def test_dla_flags_only_where_there_is_a_dla():
    nx = get_target("jetson-orin-nx-16gb")
    assert nx.dla_cores == 2
    args = trtexec_args(nx, "fp16", SHAPE, dla_core=1)
    assert "--useDLACore=1" in args and "--allowGPUFallback" in args
    with pytest.raises(InputError, match="has no DLA"):
        trtexec_args(get_target("jetson-orin-nano-8gb"), "fp16", SHAPE, dla_core=0)
    with pytest.raises(InputError, match="INT8 or FP16"):
        trtexec_args(nx, "fp32", SHAPE, dla_core=0)
    with pytest.raises(InputError, match="out of range"):
        trtexec_args(nx, "int8", SHAPE, dla_core=2)


def test_cpu_targets_have_no_trtexec_command():
    with pytest.raises(InputError, match="does not run TensorRT"):
        trtexec_args(get_target("raspberry-pi-5"), "fp32", SHAPE)


@pytest.mark.parametrize("name", ["jetson-orin-nano-8gb", "jetson-orin-nx-16gb", "jetson-nano"])
def test_build_script_is_valid_bash_with_every_flag(name, tmp_path):
    target = get_target(name)
    onnx = {p: "../export/model.onnx" if p == "int8" else "../export/model-fp32.onnx"
            for p in target.precisions}  # fmt: skip
    text = build_script(target, onnx, (3, 32, 32))
    path = tmp_path / "build_engine.sh"
    path.write_text(text)
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    for p in target.precisions:
        assert f"--saveEngine=model-{p}.engine" in text
        assert f"--exportProfile=model-{p}.profile.json" in text
    assert "--timingCacheFile=timing.cache" in text and "/usr/src/tensorrt/bin/trtexec" in text
    assert ("--useDLACore=$DLA_CORE" in text) == bool(target.dla_cores)
    assert " 2>&1 | tee model-" in text  # [E]/[W] lines (stderr) reach the log


def test_build_script_fails_clearly_without_trtexec(tmp_path):
    target = get_target("jetson-orin-nano-8gb")
    path = tmp_path / "build_engine.sh"
    path.write_text(build_script(target, {"fp16": "m.onnx"}, (3, 32, 32)))
    proc = subprocess.run(
        ["bash", str(path)], capture_output=True, text=True,
        env={"TRTEXEC": "/nonexistent/trtexec", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 1
    assert "trtexec not found at /nonexistent/trtexec" in proc.stderr


def test_profile_strings_cannot_add_a_command_to_the_script(tmp_path):
    # profiles refuse control characters (tests/cli/test_bad_input_table.py); a profile built
    # past that check still writes one comment line per string
    good = get_target("jetson-orin-nano-8gb")
    evil = type(good).model_construct(**(dict(good) | {
        "description": f"x\ntouch {tmp_path}/desc", "runtime_version": f"10.3\rtouch {tmp_path}/rv",
        "jetpack": f"6.2\u2028\ntouch {tmp_path}/jp"}))  # fmt: skip
    path = tmp_path / "build_engine.sh"
    path.write_text(build_script(evil, {"fp16": "m.onnx"}, (3, 32, 32)))
    subprocess.run(["bash", str(path)], capture_output=True, env={"TRTEXEC": "/nonexistent/x"})
    assert not any((tmp_path / n).exists() for n in ("desc", "rv", "jp"))
    plain = build_script(good, {"fp16": "m.onnx"}, (3, 32, 32))
    assert path.read_text().count("\n") == plain.count("\n")
