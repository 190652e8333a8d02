"""Recipes: `--config recipe.yaml` holds the same keys as the compress flags; flags win."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd._io import read_yaml_mapping
from edgekd.errors import ConfigError


def load_recipe(path: str | Path, valid: set[str]) -> dict[str, Any]:
    """Read a recipe with the safe loader; keys may use dashes or underscores."""
    path = Path(path)
    raw = read_yaml_mapping(path, ConfigError, "--config")
    out = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in valid:
            raise ConfigError(
                f"unknown key in {path.name}",
                value=repr(key),
                valid=sorted(k.replace("_", "-") for k in valid),
                fix="use the compress flag names",
            )
        out[name] = value
    return out


def effective_values(
    defaults_and_flags: dict[str, Any], on_command_line: set[str], recipe_path: str | Path | None
) -> dict[str, Any]:
    """Flags typed on the command line > recipe values > built-in defaults."""
    merged = dict(defaults_and_flags)
    if recipe_path is None:
        return merged
    for key, value in load_recipe(recipe_path, set(merged)).items():
        if key not in on_command_line:
            merged[key] = value
    return merged
