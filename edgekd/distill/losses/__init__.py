"""Distillation losses, one file per method; each module returns a dict of named loss terms.

Importing this package registers every method; `list_losses()` names them with one line each.
"""

from edgekd.distill.losses import (  # noqa: F401
    akl,
    cakld,
    ce,
    dkd,
    fa,
    faqd,
    fitnet,
    kd,
    luminet,
    mixstd,
    nd,
    nkd,
    ofa,
    qfd,
    sinkd,
    ttm,
)
from edgekd.distill.losses._registry import (
    create_loss,
    list_losses,
    loss_class,
    parse_loss_args,
    register_loss,
)
from edgekd.distill.losses.akl import akl_loss
from edgekd.distill.losses.base import DistillLoss, KDBatch
from edgekd.distill.losses.cakld import cakld_loss, teacher_confidence
from edgekd.distill.losses.dkd import dkd_loss
from edgekd.distill.losses.fa import fa_loss, fa_loss_fast
from edgekd.distill.losses.faqd import faqd_loss
from edgekd.distill.losses.fitnet import fitnet_loss
from edgekd.distill.losses.kd import KDLoss, kd_loss
from edgekd.distill.losses.luminet import luminet_loss
from edgekd.distill.losses.mixstd import mixstd_loss
from edgekd.distill.losses.nd import nd_loss
from edgekd.distill.losses.nkd import nkd_loss
from edgekd.distill.losses.ofa import ofa_loss
from edgekd.distill.losses.qfd import qfd_loss, quantize_feature
from edgekd.distill.losses.sinkd import sinkd_loss
from edgekd.distill.losses.ttm import ttm_loss

__all__ = [
    "DistillLoss",
    "KDBatch",
    "KDLoss",
    "akl_loss",
    "cakld_loss",
    "create_loss",
    "dkd_loss",
    "fa_loss",
    "fa_loss_fast",
    "faqd_loss",
    "fitnet_loss",
    "kd_loss",
    "list_losses",
    "loss_class",
    "luminet_loss",
    "mixstd_loss",
    "nd_loss",
    "nkd_loss",
    "ofa_loss",
    "qfd_loss",
    "quantize_feature",
    "sinkd_loss",
    "teacher_confidence",
    "parse_loss_args",
    "register_loss",
    "ttm_loss",
]
