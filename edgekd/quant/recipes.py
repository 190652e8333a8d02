"""Calibration recipes: a method name, or a YAML file under calibration/ (method, samples, pct)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekd._io import read_yaml_mapping
from edgekd.errors import ConfigError
from edgekd.quant.modelopt_int8 import CALIB_METHODS


@dataclass(frozen=True)
class CalibRecipe:
    method: str
    num_samples: int
    percentile: float = 99.99


def resolve_calib(spec: str, num_samples: int, percentile: float) -> CalibRecipe:
    """`spec` is max / entropy / percentile, or a path to a recipe YAML."""
    if spec in CALIB_METHODS:
        return CalibRecipe(spec, num_samples, percentile)
    path = Path(spec)
    if path.suffix not in (".yaml", ".yml"):
        raise ConfigError(
            "unknown calibration method",
            value=repr(spec),
            valid=CALIB_METHODS,
            fix="or pass a recipe YAML such as calibration/entropy.yaml",
        )
    raw = read_yaml_mapping(path, ConfigError, "calibration recipe")
    unknown = sorted(set(raw) - {"method", "num_samples", "percentile"})
    if not isinstance(raw, dict) or unknown:
        raise ConfigError(
            "bad calibration recipe",
            value=str(path),
            fix=f"keys are method, num_samples, percentile (got {unknown})",
        )
    method = raw.get("method", "max")
    if method not in CALIB_METHODS:
        raise ConfigError("unknown calibration method", value=repr(method), valid=CALIB_METHODS)
    n = raw.get("num_samples", num_samples)
    pct = raw.get("percentile", percentile)
    if not isinstance(n, int) or n < 1 or not isinstance(pct, (int, float)) or not 50 < pct <= 100:
        raise ConfigError(
            "bad calibration recipe values",
            value=f"num_samples {n!r}, percentile {pct!r}",
            fix="num_samples >= 1, 50 < percentile <= 100",
        )
    return CalibRecipe(method, n, float(pct))
