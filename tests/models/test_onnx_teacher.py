"""ONNX teachers (edgekd.models.onnx_teacher): run in ONNX Runtime, checked at load."""

from __future__ import annotations

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from edgekd.errors import ModelLoadError
from edgekd.models import count_params, load_teacher
from edgekd.models.onnx_teacher import OnnxTeacher, opaque_kind


class Net(torch.nn.Module):
    def __init__(self, softmax: bool = False) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 5)
        self.softmax = softmax

    def forward(self, x):
        y = self.fc(torch.relu(self.conv(x)).flatten(1))
        return y.softmax(1) if self.softmax else y


def export(model, path, batch=None):
    dyn = None if batch else {"x": {0: "N"}, "y": {0: "N"}}
    torch.onnx.export(model.eval(), (torch.zeros(batch or 2, 3, 8, 8),), str(path),
                      input_names=["x"], output_names=["y"], dynamic_axes=dyn,
                      dynamo=False)  # fmt: skip
    return path


def test_logits_are_the_torch_models(tmp_path):
    torch.manual_seed(0)
    net = Net()
    loaded = load_teacher(str(export(net, tmp_path / "t.onnx")))
    assert loaded.kind == "onnx" and loaded.input_shape == (3, 8, 8)
    x = torch.randn(7, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), net(x), atol=1e-5)
    assert loaded.module.probabilities is False
    # parameters: every element of the initializers, 3*4*9 + 4 + 256*5 + 5
    assert count_params(loaded.module) == 108 + 4 + 1280 + 5
    assert opaque_kind(loaded.module) == "ONNX" and loaded.meta["onnx_opset"] > 0


def test_a_fixed_batch_and_a_softmax_head(tmp_path):
    """Exported at batch 1 with the softmax inside: any batch size runs (in chunks of one),
    and the outputs are log-probabilities, whose softmax is the model's."""
    torch.manual_seed(0)
    net = Net(softmax=True)
    m = OnnxTeacher(export(net, tmp_path / "b1.onnx", batch=1))
    assert m.batch == 1
    x = torch.randn(3, 3, 8, 8)
    out = m(x)
    assert m.probabilities is True and out.shape == (3, 5)
    with torch.no_grad():
        assert torch.allclose(out.softmax(1), net(x), atol=1e-5)
        assert torch.allclose(out.exp().sum(1), torch.ones(3), atol=1e-5)


def _graph_model(inputs, path, extra_init=None):
    """A one-node Identity-free model: y = Flatten(x0) with the given graph inputs."""
    nodes = [helper.make_node("Flatten", [inputs[0].name], ["y"])]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", inputs, [out], initializer=extra_init or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_bad_onnx_teachers_are_one_clear_error(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    two = _graph_model([x, helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])],
                       tmp_path / "two.onnx")  # fmt: skip
    with pytest.raises(ModelLoadError, match="exactly one input"):
        load_teacher(str(two))
    flat = _graph_model([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                        tmp_path / "flat.onnx")  # fmt: skip
    with pytest.raises(ModelLoadError, match=r"must be \[N, C, H, W\]"):
        load_teacher(str(flat))
    ints = _graph_model([helper.make_tensor_value_info("x", TensorProto.INT64, [1, 3, 8, 8])],
                        tmp_path / "ints.onnx")  # fmt: skip
    with pytest.raises(ModelLoadError, match="float32 or float16"):
        load_teacher(str(ints))


def test_external_data_outside_the_models_folder_is_refused(tmp_path):
    """A tensor stored as external data at ../secret would make ONNX Runtime read that file
    into the model; it is refused before any session is made."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"\0" * 16)
    (tmp_path / "m").mkdir()
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../secret"), ("offset", "0"), ("length", "16")):
        w.external_data.add(key=k, value=v)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    path = _graph_model([x], tmp_path / "m/leak.onnx", extra_init=[w])
    with pytest.raises(ModelLoadError, match="external data lies outside its folder") as e:
        load_teacher(str(path))
    assert "../secret" in str(e.value)
