import pytest
import torch
from torch import nn

from edgekd.distill import TrainConfig, distill
from edgekd.distill.guards import first_nonfinite_module
from edgekd.errors import StageError


class Blowup(nn.Module):
    def __init__(self):
        super().__init__()
        self.ok = nn.Flatten()
        self.log = nn.Linear(3 * 32 * 32, 10)
        self.head = nn.Linear(10, 10)

    def forward(self, x):
        h = self.log(self.ok(x))
        h = torch.log(h - h.max() - 1)  # log of a negative number: NaN from here on
        return self.head(h)


class LogLayer(nn.Module):
    def forward(self, x):
        return torch.log(x - x.max() - 1)


def test_names_first_nonfinite_leaf():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), LogLayer(), nn.Linear(4, 2))
    assert first_nonfinite_module(net, torch.randn(3, 12)) == "2"
    assert first_nonfinite_module(nn.Sequential(nn.Linear(12, 2)), torch.randn(3, 12)) is None


def test_trainer_error_names_the_layer(tmp_path, small_digits):
    student = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10), LogLayer())
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    with pytest.raises(StageError) as e:
        distill(student, teacher, small_digits, TrainConfig(epochs=1, lr=1e-3), tmp_path, key="k")
    assert "first non-finite output: layer 2" in e.value.one_line()
