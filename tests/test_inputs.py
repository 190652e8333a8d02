"""load_inputs: the teacher and the data, loaded and checked once, the same for every caller."""

from __future__ import annotations

import json

import pytest
import torch

from edgekd._io import sha256_file
from edgekd.errors import InputError
from edgekd.inputs import InputSpec, load_inputs


def test_a_timm_teacher_is_its_own_name():
    got = load_inputs(InputSpec("timm:resnet10t", "digits", input_shape=(3, 16, 16)))
    assert got.teacher_sha == "timm:resnet10t" and got.teacher.kind == "timm"
    assert got.data.input_shape == (3, 16, 16) and got.data.num_classes == 10


def test_a_teacher_file_is_its_sha256_and_sets_the_shape(tmp_path):
    from edgekd.models import create_timm, save_checkpoint

    path = tmp_path / "t.pt"
    torch.manual_seed(0)
    save_checkpoint(path, create_timm("resnet10t", 10), "resnet10t", 10, (3, 24, 24))
    got = load_inputs(InputSpec(str(path), "digits"))
    assert got.teacher_sha == sha256_file(path)
    assert got.data.input_shape == (3, 24, 24)  # the checkpoint's shape, none given


def test_the_spec_travels_as_json():
    from dataclasses import asdict

    spec = InputSpec("t.pt", "digits", "resnet18", (3, 32, 32), False, True)
    assert InputSpec.from_dict(json.loads(json.dumps(asdict(spec)))) == spec


def test_a_teacher_with_other_classes_than_the_data_is_refused(tmp_path):
    from edgekd.models import create_timm, save_checkpoint

    path = tmp_path / "five.pt"
    save_checkpoint(path, create_timm("resnet10t", 5), "resnet10t", 5, (3, 16, 16))
    with pytest.raises(InputError, match="output classes do not match") as e:
        load_inputs(InputSpec(str(path), "digits"))
    assert "teacher 5 vs data 10" in e.value.one_line()


def test_a_traced_torchscript_teacher_gives_the_input_shape(tmp_path):
    """issue 25 item 7: the size a TorchScript teacher was traced at is used, and the first
    line says where the size came from (a folder's 224x224 default is never silent)."""
    import warnings

    import torch

    from edgekd.inputs import InputSpec, load_inputs
    from tests.data.test_folder import make_folder

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(net, torch.zeros(2, 3, 28, 28)).save(str(tmp_path / "traced.ts"))
        torch.jit.script(net).save(str(tmp_path / "scripted.ts"))
    data = make_folder(tmp_path / "imgs", classes=("a", "b"), per_class=1, size=8)
    traced = load_inputs(InputSpec(str(tmp_path / "traced.ts"), str(data)))
    assert traced.data.input_shape == (3, 28, 28)
    assert traced.shape_from == "the teacher file (torchscript)"
    scripted = load_inputs(InputSpec(str(tmp_path / "scripted.ts"), str(data)))
    assert (
        scripted.data.input_shape == (3, 224, 224) and scripted.shape_from == "the data's default"
    )
    given = load_inputs(InputSpec(str(tmp_path / "traced.ts"), str(data), input_shape=(3, 16, 16)))
    assert given.data.input_shape == (3, 16, 16) and given.shape_from == "--input-shape"
