"""Training-free proxies, one file each; every score is "higher is better"."""

from edgekd.search.proxies.diswot import DiswotReference, diswot_score, relation_distance
from edgekd.search.proxies.gradnorm import gradnorm_score
from edgekd.search.proxies.naswot import naswot_score
from edgekd.search.proxies.params import params_score
from edgekd.search.proxies.synflow import synflow_score

__all__ = [
    "DiswotReference",
    "diswot_score",
    "gradnorm_score",
    "naswot_score",
    "params_score",
    "relation_distance",
    "synflow_score",
]
