"""Where an artifact is timed: the probe for each kind of target, with one record shape."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from edgekd.latency.cost import predict_latency
from edgekd.profiling.probe import HostOrt, Predicted, RemoteDevice, choose_probe
from edgekd.targets import get_target
from tests.latency import sshd

SHAPE = (3, 16, 16)
RECORD = {"min_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "throughput_ips", "batch",
          "threads", "warmup", "iters", "runtime", "measured"}  # fmt: skip


@pytest.fixture(scope="module")
def model_onnx(tmp_path_factory):
    from edgekd.export import export_onnx
    from edgekd.models import create_timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("probe") / "lcnet.onnx"
    export_onnx(create_timm("lcnet_050", 10).eval(), path, SHAPE)
    return path


def test_choose_probe_by_target(tmp_path):
    host = choose_probe(get_target("host"), SHAPE, device_dir=tmp_path)
    assert isinstance(host, HostOrt) and host.source == "measured on this machine (host)"
    # no TensorRT here: a Jetson's latency is predicted
    jet = choose_probe(get_target("jetson-orin-nano-8gb"), SHAPE, device_dir=tmp_path)
    assert isinstance(jet, Predicted) and jet.source.endswith("not measured")
    assert not host.on_device and not jet.on_device


def test_predicted_is_the_cost_model_total_labelled_predicted(model_onnx, tmp_path):
    target = get_target("jetson-orin-nano-8gb")
    got = Predicted(target, SHAPE).latency(model_onnx, "fp16", "s")
    want = predict_latency(model_onnx, target, "fp16").total_ms
    assert set(got) == RECORD | {"range_ms", "range_coverage"} and got["measured"] is False
    assert got["p50_ms"] == got["p90_ms"] == got["p99_ms"] == want
    band = target.prediction_range
    assert got["range_ms"] == (pytest.approx(list(band.of(want))) if band else None)
    assert got["throughput_ips"] == pytest.approx(1e3 / want)
    assert got["runtime"].startswith("predicted: tensorrt")


def test_host_ort_measures_with_its_settings(model_onnx):
    got = HostOrt(get_target("host"), SHAPE, threads=1, warmup=2, iters=10).latency(
        model_onnx, "fp32", "s"
    )
    assert set(got) >= RECORD and got["measured"] is True
    assert (got["threads"], got["warmup"], got["iters"]) == (1, 2, 10)
    assert 0 < got["min_ms"] <= got["p50_ms"] <= got["p90_ms"] <= got["p99_ms"]


@pytest.mark.skipif(sshd.available() is not None, reason=str(sshd.available()))
def test_remote_device_times_and_checks_on_the_device(loopback_ssh, model_onnx, tmp_path):
    from edgekd.data import load_data, stack_inputs

    target = get_target("raspberry-pi-5")
    probe = choose_probe(target, SHAPE, device_dir=tmp_path, warmup=2, iters=10,
                         remote=loopback_ssh.dest, ssh_options=tuple(loopback_ssh.options),
                         python=sys.executable)  # fmt: skip
    assert isinstance(probe, RemoteDevice) and probe.on_device
    assert probe.source == f"measured on the device {loopback_ssh.dest} (raspberry-pi-5)"
    lat = probe.latency(model_onnx, "fp32", "student-fp32")
    assert set(lat) >= RECORD and lat["measured"] is True and lat["threads"] == 4
    assert "127.0.0.1" in lat["runtime"]
    val = load_data("digits", SHAPE).val
    _, y = stack_inputs(val)
    got = probe.device_accuracy("student-fp32", val, y.numpy())
    from edgekd.backends import onnxruntime as ortb

    here = ortb.predict(model_onnx, val).argmax(1)
    assert np.array_equal(got["predictions"], here)  # the same ONNX Runtime build
    assert got["top1"] == pytest.approx(float((here == y.numpy()).mean() * 100))
    assert probe.facts() is not None
