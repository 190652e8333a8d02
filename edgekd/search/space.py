"""The search space: edge-friendly timm families at several widths/depths, at the teacher's
input resolution. Users restrict families, give an explicit list, or add `pkg.module:fn`
factories (a function taking `num_classes` and returning an nn.Module)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn

from edgekd.errors import ConfigError

FAMILIES: dict[str, tuple[str, ...]] = {
    "resnet": ("resnet10t", "resnet14t", "resnet18"),
    "mobilenetv3": (
        "mobilenetv3_small_050", "mobilenetv3_small_075", "mobilenetv3_small_100",
        "mobilenetv3_large_075", "mobilenetv3_large_100",
    ),
    "mobilenetv4": ("mobilenetv4_conv_small_050", "mobilenetv4_conv_small"),
    "efficientnet": ("efficientnet_b0", "tinynet_a", "tinynet_c", "tinynet_e"),
    "lcnet": ("lcnet_050", "lcnet_075", "lcnet_100"),
    "regnetx": ("regnetx_002", "regnetx_004"),
    "ghostnet": ("ghostnet_050", "ghostnet_100"),
    "repvit": ("repvit_m0_9",),
    "fastvit": ("fastvit_t8",),
}  # fmt: skip


def candidates(families: list[str] | None = None, names: list[str] | None = None) -> list[str]:
    """Candidate names: an explicit list wins; else every model of the chosen families."""
    if names:
        return list(dict.fromkeys(names))
    chosen = families or list(FAMILIES)
    unknown = [f for f in chosen if f not in FAMILIES]
    if unknown:
        raise ConfigError("unknown model family", value=", ".join(unknown), valid=list(FAMILIES))
    return [n for f in chosen for n in FAMILIES[f]]


def build_candidate(name: str, num_classes: int, input_shape) -> nn.Module:
    """A timm model by name, or `pkg.module:fn` called with num_classes."""
    if ":" in name:
        mod, _, fn = name.partition(":")
        try:
            factory: Callable = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as e:
            raise ConfigError("candidate factory not found", value=name, fix=str(e)) from None
        return factory(num_classes)
    from edgekd.models import build_student

    return build_student(name, num_classes, input_shape)
