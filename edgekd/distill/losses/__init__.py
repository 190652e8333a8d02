"""Distillation losses, one file per method; each returns a dict of named loss terms."""

from edgekd.distill.losses import kd  # noqa: F401  (registers "kd")
from edgekd.distill.losses._registry import create_loss, list_losses, register_loss
from edgekd.distill.losses.kd import KDLoss, kd_loss

__all__ = ["KDLoss", "create_loss", "kd_loss", "list_losses", "register_loss"]
