"""Born-Again's ensemble teacher (edgekd.distill.ensemble): the log of the members' averaged
softmax, worked by hand; and the run refuses what an ensemble cannot give."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgekd.config import CompressConfig, build_config
from edgekd.distill.ensemble import EnsembleTeacher
from edgekd.errors import ConfigError, InputError


class _Fixed(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor([logits])

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def test_the_ensemble_is_the_averaged_prediction():
    # member a: logits (0, ln 3) -> p = (1/4, 3/4); member b: (ln 3, 0) -> (3/4, 1/4);
    # average (1/2, 1/2): log-probabilities (ln 1/2, ln 1/2)
    ens = EnsembleTeacher([_Fixed([0.0, math.log(3)]), _Fixed([math.log(3), 0.0])])
    out = ens(torch.zeros(2, 1))
    assert out.shape == (2, 2)
    assert out[0].tolist() == pytest.approx([math.log(0.5)] * 2)
    one = EnsembleTeacher([_Fixed([1.0, 2.0, 4.0])])(torch.zeros(1, 1))
    want = torch.tensor([1.0, 2.0, 4.0]).softmax(0).tolist()
    assert one.softmax(1).tolist()[0] == pytest.approx(want)  # one member: its own prediction


def test_an_ensemble_needs_three_generations_and_a_logit_loss():
    with pytest.raises(ConfigError, match="needs --generations 3 or more"):
        build_config(CompressConfig, {"teacher": "t.pt", "student": "resnet10t",
                                      "generations": 2, "born_again_teacher": "ensemble"})
    from edgekd.pipeline.plans import make_plans

    cfg = build_config(CompressConfig, {"teacher": "t.pt", "student": "resnet10t",
                                        "generations": 3, "born_again_teacher": "ensemble",
                                        "kd_loss": "fitnet"})  # fmt: skip
    with pytest.raises(InputError, match="gives logits only"):
        make_plans(cfg)
