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
