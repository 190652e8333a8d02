"""The TensorRT backend: the version/GPU check runs everywhere; building and running an engine
needs `tensorrt` and a GPU and is skipped (with that reason) where they are absent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgekd.backends import tensorrt as trt_backend
from edgekd.errors import InputError

OK, WHY = trt_backend.available()
META = {"tensorrt": "10.3.0", "compute_capability": "8.7", "device": "Orin", "precision": "int8"}


def test_import_edgekd_never_needs_tensorrt():
    code = "import sys, edgekd, edgekd.backends.tensorrt, edgekd.cli.app; "
    code += "sys.exit('tensorrt' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_engine_from_the_same_versions_is_accepted():
    trt_backend.check_engine_meta(META, "10.3.0", ("Orin", "8.7"))


def test_engine_from_another_tensorrt_is_refused():
    with pytest.raises(InputError, match="another TensorRT version: 10.3.0 vs 8.5.2 here"):
        trt_backend.check_engine_meta(META, "8.5.2", ("Orin", "8.7"))


def test_engine_from_another_gpu_is_refused():
    with pytest.raises(InputError, match="another GPU.*sm 8.7.*sm 7.2"):
        trt_backend.check_engine_meta(META, "10.3.0", ("Xavier", "7.2"))


def test_availability_reason_is_stated():
    assert OK or WHY  # off a GPU machine, a reason is given


@pytest.mark.skipif(not OK, reason=f"TensorRT engine build not possible here: {WHY}")
def test_build_load_and_predict_an_engine(tmp_path, digits):
    import torch

    from edgekd.export import export_onnx
    from edgekd.models import create_timm
    from edgekd.targets import get_target

    onnx = tmp_path / "m.onnx"
    export_onnx(create_timm("lcnet_050", 10).eval(), onnx, (3, 32, 32))
    target = get_target("jetson-orin-nano-8gb")
    meta = trt_backend.build_engine(onnx, tmp_path / "m.engine", target, "fp16", (3, 32, 32))
    assert (tmp_path / "timing.cache").exists() and meta.precision == "fp16"
    logits = trt_backend.predict(
        tmp_path / "m.engine", torch.utils.data.Subset(digits.val, range(8))
    )
    assert logits.shape == (8, 10)
