"""The ensemble teacher of Born-Again (`--born-again-teacher ensemble`): Furlanello et al.,
"Born-Again Neural Networks" (ICML 2018), ensemble the generations by averaging their
predictions (BANE). As a teacher here (edgekd's reading of "an ensemble teacher": the paper
ensembles the generations at test time), generation g learns from the ensemble of generations
1..g-1. Its logits are log(mean_m softmax(z_m)): at T = 1 the KD target is exactly the
ensemble's averaged prediction, and at other temperatures the average is softened like any
teacher's logits (edgekd's choice). Logits only: it has no single layer to tap."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgekd.outputs import first_output


class EnsembleTeacher(nn.Module):
    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logp = [torch.log_softmax(first_output(m(x)).float(), dim=1) for m in self.members]
        return torch.logsumexp(torch.stack(logp), dim=0) - math.log(len(logp))

