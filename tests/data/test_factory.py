import sys
import textwrap

import pytest

from edgekd.data import load_data
from edgekd.errors import DataError

FACTORY = """
import torch
from torch.utils.data import TensorDataset

def make(n_classes={n}, bad_label={bad}):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 3, 16, 16, generator=g)
    y = torch.arange(20) % n_classes
    if bad_label is not None:
        y[3] = bad_label
    ds = TensorDataset(x, y)
    return ds, TensorDataset(x[:8], y[:8])

def make_dict():
    tr, va = make()
    return {{"train": tr, "val": va, "num_classes": 4, "class_names": ["a", "b", "c", "d"]}}

def make_empty():
    tr, _ = make()
    return tr, []
"""


@pytest.fixture
def factory_module(tmp_path, monkeypatch, request):
    n, bad = getattr(request, "param", (4, None))
    name = f"userdata_{n}_{bad}".replace("-", "m")
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(FACTORY.format(n=n, bad=bad)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_tuple_factory(factory_module):
    b = load_data(f"{factory_module}:make")
    assert b.num_classes == 4 and b.input_shape == (3, 16, 16) and len(b.val) == 8


def test_dict_factory_with_names(factory_module):
    b = load_data(f"{factory_module}:make_dict")
    assert b.class_names == ("a", "b", "c", "d")


def test_empty_val(factory_module):
    with pytest.raises(DataError, match="empty val"):
        load_data(f"{factory_module}:make_empty")


@pytest.mark.parametrize("factory_module", [(4, -1)], indirect=True)
def test_negative_label_is_out_of_range(factory_module):
    with pytest.raises(DataError, match="labels out of range"):
        load_data(f"{factory_module}:make")


def test_labels_beyond_declared_classes(factory_module, monkeypatch):
    mod = __import__(factory_module)
    tr, va = mod.make()
    monkeypatch.setattr(mod, "make_dict", lambda: {"train": tr, "val": va, "num_classes": 3})
    with pytest.raises(DataError, match=r"labels out of range: 3"):
        load_data(f"{factory_module}:make_dict")


def test_missing_function(factory_module):
    with pytest.raises(DataError, match="function not found"):
        load_data(f"{factory_module}:nope")


def test_missing_module():
    with pytest.raises(DataError, match="cannot import"):
        load_data("no_such_module_xyz:make")
