"""measure_samples in interleaved rounds: every model once per round, order rotated, the
median of the rounds kept with their spread."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import edgekd.backends.onnxruntime as ortb
import edgekd.profiling.calibrate as cal
from edgekd.targets import get_target


def test_rounds_interleave_rotate_and_keep_the_median(tmp_path, monkeypatch):
    calls = []
    times = iter([1.0, 2.0, 3.0, 9.0, 5.0, 6.0])  # round 1: a b c, round 2: b c a

    def fake_profile(path, shape, **kw):
        calls.append(path.name)
        return SimpleNamespace(p50_ms=next(times))

    monkeypatch.setattr(ortb, "profile", fake_profile)
    monkeypatch.setattr(cal, "export_timm", lambda n, s, d, int8: d / f"{n}.onnx")
    monkeypatch.setattr(cal, "load_onnx", lambda p: None)
    monkeypatch.setattr(cal, "graph_layers", lambda m, rt: [])
    host = get_target("host").model_copy(update={"precisions": ["fp32"]})
    out = cal.measure_samples(("a", "b", "c"), host, workdir=tmp_path, repeats=2)
    assert calls == ["a.onnx", "b.onnx", "c.onnx", "b.onnx", "c.onnx", "a.onnx"]
    a, b, c = out
    assert a.rounds == (1.0, 6.0) and a.measured_ms == 3.5  # the median of two rounds
    assert b.rounds == (2.0, 9.0) and c.rounds == (3.0, 5.0)
    assert b.spread_pct == pytest.approx((9 - 2) / 5.5 * 100)
