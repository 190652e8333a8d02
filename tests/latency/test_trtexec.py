"""The trtexec parser on real logs, and fuzzed: random text raises only TrtexecParseError.

Sources of the excerpts:
- tests/latency/data/trt84-agx-xavier.log (a copy of ../shared/reference/trtexec/): TensorRT
  8.4 on a Jetson AGX Xavier, https://github.com/OE4T/meta-tegra/pull/952.
- tests/latency/data/trt10-summary-issue4177.log: a TensorRT 10 style summary (percentiles 90,
  95, 99; H2D / D2H), from https://github.com/NVIDIA/TensorRT/issues/4177 (comment of
  2024-10-03).
- The TensorRT 10.2 header line below: https://github.com/NVIDIA/TensorRT/issues/4036.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgekd.latency.trtexec import (
    TrtexecParseError,
    parse_layer_profile,
    parse_trtexec_log,
    version_from_code,
)
from tests.test_fuzz_yaml import FUZZ

HERE = Path(__file__).parent
REFERENCE = HERE / "data/trt84-agx-xavier.log"
TRT10 = (HERE / "data/trt10-summary-issue4177.log").read_text()
TRT102_HEADER = (
    "&&&& RUNNING TensorRT.trtexec [TensorRT v100200] # D:\\TensorRT-10.2.0.19\\bin\\trtexec.exe "
    "--loadEngine=FM_P_D_fp16.engine --shapes=ref_y:1x128x100x160"
)


def test_tensorrt_84_reference_log():
    r = parse_trtexec_log(REFERENCE.read_text())
    assert r.status == "PASSED" and r.passed
    assert (r.version, r.version_code) == ("8.4.0", 8400)
    assert r.command == "trtexec --loadEngine=mnist16.trt --batch=16"
    assert r.throughput_qps == 41087.7
    lat = r.stats["latency"]
    assert (lat.min, lat.max, lat.mean, lat.median) == (0.387207, 0.447357, 0.402238, 0.401947)
    assert lat.percentiles == {99.0: 0.420288}
    assert r.stats["gpu_compute"].median == 0.388443
    assert r.stats["enqueue"].percentiles[99.0] == 0.126099
    assert r.total_host_walltime_s == 3.00119 and r.total_gpu_compute_s == 2.99202


def test_tensorrt_10_summary_every_percentile_and_transfers():
    r = parse_trtexec_log(TRT10)
    assert r.status is None and r.version is None  # the excerpt has no &&&& line
    assert r.throughput_qps == 130.298
    assert r.stats["latency"].percentiles == {90.0: 10.2996, 95.0: 10.8698, 99.0: 12.9675}
    assert r.stats["gpu_compute"].percentiles[95.0] == 10.8175
    assert r.stats["h2d"].mean == 0.0122212 and r.stats["d2h"].percentiles[99.0] == 0.0994873
    assert r.total_gpu_compute_s == 2.96536


def test_tensorrt_10_header_and_passed_line():
    r = parse_trtexec_log(
        TRT102_HEADER + "\n" + TRT10 + "\n&&&& PASSED TensorRT.trtexec "
        "[TensorRT v100200] # trtexec --loadEngine=x"
    )
    assert (r.version, r.status) == ("10.2.0", "PASSED")
    assert r.command.startswith("trtexec --loadEngine=x")


def test_failure_lines_are_collected():
    log = (
        "&&&& RUNNING TensorRT.trtexec [TensorRT v8502] # trtexec --onnx=m.onnx\n"
        "[12/01/2023-10:00:00] [E] [TRT] ModelImporter.cpp:726: While parsing node number 3 "
        "[QLinearConv]: No importer registered for op: QLinearConv\n"
        "[12/01/2023-10:00:00] [E] Failed to parse onnx file\n"
        "&&&& FAILED TensorRT.trtexec [TensorRT v8502] # trtexec --onnx=m.onnx\n"
    )
    r = parse_trtexec_log(log)
    assert r.status == "FAILED" and not r.passed and r.version == "8.5.2"
    assert len(r.errors) == 2 and "QLinearConv" in r.errors[0]


@pytest.mark.parametrize(
    "code,version", [(8001, "8.0.1"), (8205, "8.2.5"), (8601, "8.6.1"), (100300, "10.3.0")]
)
def test_version_codes(code, version):
    assert version_from_code(code) == version


def test_layer_profile():
    text = json.dumps(
        [
            {"count": 2094},
            {
                "name": "conv1 + bn",
                "timeMs": 47.8,
                "averageMs": 0.0228,
                "medianMs": 0.0225,
                "percentage": 1.6,
            },
            {
                "name": "fc",
                "timeMs": 270.1,
                "averageMs": 0.129,
                "medianMs": 0.129,
                "percentage": 9.0,
            },
        ]
    )
    layers = parse_layer_profile(text)
    assert [layer.name for layer in layers] == ["fc", "conv1 + bn"]
    assert layers[1].average_ms == 0.0228 and layers[0].percentage == 9.0


@pytest.mark.parametrize("text", ["", "hello", "Throughput:", "&&&& RUNNING nothing"])
def test_non_logs_raise_the_parsers_error(text):
    with pytest.raises(TrtexecParseError):
        parse_trtexec_log(text)


@FUZZ
@given(st.text(max_size=400))
def test_random_text_raises_only_the_parsers_error(text):
    try:
        parse_trtexec_log(text)
    except TrtexecParseError:
        pass


@FUZZ
@given(
    st.lists(
        st.sampled_from(TRT10.splitlines() + [TRT102_HEADER, "garbage ::: = ms"]), max_size=12
    ),
    st.integers(0, 300),
)
def test_cut_and_shuffled_real_lines(lines, cut):
    text = "\n".join(lines)[: cut or None]
    try:
        r = parse_trtexec_log(text)
    except TrtexecParseError:
        return
    for s in r.stats.values():
        assert all(isinstance(v, float) for v in s.percentiles.values())


@FUZZ
@given(st.text(max_size=200))
def test_random_layer_profiles_raise_only_the_parsers_error(text):
    try:
        parse_layer_profile(text)
    except TrtexecParseError:
        pass


# Lines built from the format strings of the TensorRT source (as the audit quotes them:
# shared/reference/tensorrt/audit-2026-12.md, sections 2.1-2.6) and the recoverable [E] lines
# of public issues (Hale423/CenterPoint #10, NVIDIA/Stable-Diffusion-WebUI-TensorRT #163).
TRT1013_HEADER = "&&&& RUNNING TensorRT.trtexec [TensorRT v101300] [b35] # trtexec --onnx=m.onnx"
RECOVERABLE = [
    "[12/01/2025-10:00:01] [E] [TRT] Requested amount of GPU memory (1073741824 bytes) could "
    "not be allocated. There may not be enough free memory for allocation to succeed.",
    "[12/01/2025-10:00:01] [W] [TRT] Skipping tactic 3 due to insufficient memory on requested "
    "size of 1073741824 detected for tactic 0x0000000000000003.",
    "[12/01/2025-10:00:02] [E] 9: Skipping tactic 0x0000000000000000 due to exception "
    "[autotuner.cpp:get_best_tactic:1433] autotuning: CUDA error 2 allocating 0-byte buffer",
]
# the 11.1 epilog (an empty [I] line first) and an 8.5 latency line with the default percentiles,
# written from sampleReporting.cpp's format strings at those tags
SUMMARY_11 = (HERE / "data/trt11-summary-format.log").read_text()
SUMMARY_85 = (HERE / "data/trt85-latency-format.log").read_text()


def test_a_build_tag_in_the_header_keeps_the_command():
    r = parse_trtexec_log(TRT1013_HEADER + "\n&&&& PASSED TensorRT.trtexec [TensorRT v101300] "
                          "[b35] # trtexec --onnx=m.onnx")  # fmt: skip
    assert (r.version, r.status, r.command) == ("10.13.0", "PASSED", "trtexec --onnx=m.onnx")
    r11 = parse_trtexec_log("&&&& PASSED TensorRT.trtexec [TensorRT v110100] [b106] # trtexec")
    assert (r11.version, r11.command) == ("11.1.0", "trtexec")


def test_recoverable_errors_in_a_passing_build_do_not_fail_it():
    passed = "&&&& PASSED TensorRT.trtexec [TensorRT v101300] [b35] # trtexec"
    log = "\n".join([TRT1013_HEADER, *RECOVERABLE, SUMMARY_11, passed])
    r = parse_trtexec_log(log)
    assert r.status == "PASSED" and r.passed
    assert len(r.errors) == 2 and "could not be allocated" in r.errors[0]  # kept as diagnostics
    failed = parse_trtexec_log(log.replace("&&&& PASSED", "&&&& FAILED"))
    assert not failed.passed and failed.errors == r.errors


def test_tensorrt_11_summary_after_an_empty_info_line():
    r = parse_trtexec_log(SUMMARY_11)
    assert r.throughput_qps == 5012.3
    assert r.stats["latency"].percentiles == {50.0: 0.19, 90.0: 0.205, 99.0: 0.251}
    assert r.stats["gpu_compute"].percentiles[90.0] == 0.194 and r.total_gpu_compute_s == 9.12


def test_tensorrt_85_default_percentiles():
    lat = parse_trtexec_log(SUMMARY_85).stats["latency"]
    assert lat.percentiles == {90.0: 1.4, 95.0: 1.5, 99.0: 1.9} and lat.median == 1.28


def test_layer_profiles_with_nan_and_unescaped_names_still_parse():
    # trtexec writes names without JSON escaping and numbers as C++ streams print them
    # (sampleReporting.cpp Profiler::exportJSONProfile): json cannot read this file
    text = ('[\n  { "count" : 10 }\n, { "name" : "/conv/Conv + /act/Relu", "timeMs" : 1.5, '
            '"averageMs" : 0.15, "medianMs" : 0.14, "percentage" : 60.2 }\n'
            ', { "name" : "Reformatting "CopyNode" for Input", "timeMs" : 0.5, "averageMs" : '
            '0.05, "medianMs" : 0.05, "percentage" : 20 }\n'
            ', { "name" : "idle", "timeMs" : -nan, "averageMs" : -nan, "medianMs" : nan, '
            '"percentage" : nan }\n]')  # fmt: skip
    with pytest.raises(ValueError):
        json.loads(text)
    layers = parse_layer_profile(text)
    assert [(x.name, x.average_ms) for x in layers] == [
        ("/conv/Conv + /act/Relu", 0.15), ('Reformatting "CopyNode" for Input', 0.05)]
