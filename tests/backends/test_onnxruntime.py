import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from edgekd.backends import onnxruntime as ortb
from edgekd.errors import StageError
from edgekd.export import export_onnx
from edgekd.models import create_timm


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    torch.manual_seed(0)
    m = create_timm("mobilenetv3_small_050", 10).eval()
    return export_onnx(m, tmp_path_factory.mktemp("o") / "m.onnx", (3, 32, 32)).path, m


def test_compile_writes_artifact_with_hash(tmp_path, onnx_path):
    path, _ = onnx_path
    art = ortb.compile_model(path, tmp_path / "m.ort.onnx", "fp32", "host")
    assert art.path.exists() and len(art.sha256) == 64
    assert art.toolchain["onnxruntime"] == ortb.ort_version()


def test_predict_matches_torch_in_order(onnx_path, digits):
    path, model = onnx_path
    ds = Subset(digits.val, range(50))
    logits = ortb.predict(path, ds, batch_size=16)
    xs = torch.stack([ds[i][0] for i in range(50)])
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(xs).numpy(), atol=1e-4)


def test_profile_reports_ordered_percentiles(onnx_path):
    path, _ = onnx_path
    r = ortb.profile(path, (3, 32, 32), threads=1, warmup=3, iters=20)
    assert r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms
    assert (r.threads, r.warmup, r.iters, r.batch) == (1, 3, 20, 1)
    assert r.throughput_ips == pytest.approx(1e3 / r.mean_ms)


def test_corrupt_onnx_is_a_clear_error(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x00garbage")
    with pytest.raises(StageError, match="ONNX Runtime cannot load"):
        ortb.session(p)
