"""Target device profiles: the schema, the built-in `targets/*.yaml`, names and aliases.

A profile says which runtime builds the artifact, at which precisions, and what budgets a run
on that device defaults to. Every number carries a source. Profiles load with a safe YAML loader.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgekd.config import Budgets
from edgekd.errors import TargetError

Precision = Literal["fp32", "fp16", "int8"]


class TargetProfile(BaseModel):
    """One device: runtime, precisions and default budgets, each figure with its source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    runtime: Literal["onnxruntime", "tensorrt"]
    runtime_version: str
    precisions: list[Precision] = Field(min_length=1)
    measured: bool = Field(
        False, description="True when edgekd runs on this device and measures latency itself."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for ONNX Runtime targets.")
    aliases: list[str] = []
    default_budgets: Budgets = Budgets()
    sources: dict[str, str] = Field(min_length=1)

    @model_validator(mode="after")
    def _every_figure_has_a_source(self) -> TargetProfile:
        needed = {"runtime", "precisions"} | ({"threads"} if self.threads else set())
        missing = sorted(needed - set(self.sources))
        if missing:
            raise ValueError(f"sources has no entry for {', '.join(missing)}")
        return self


def _profiles_dir() -> Path:
    """targets/ in a source checkout; edgekd/profiles/ where a wheel installed them."""
    here = Path(__file__).resolve().parent
    source_tree = here.parent / "targets"
    return source_tree if source_tree.is_dir() else here / "profiles"


def load_profile_file(path: str | Path) -> TargetProfile:
    """Load and validate one profile YAML (safe loader: no object tags)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise TargetError("cannot read target profile", value=str(path), fix=str(e)) from None
    except yaml.YAMLError as e:
        msg = str(e).splitlines()[0]
        raise TargetError("target profile is not valid YAML", value=str(path), fix=msg) from None
    if not isinstance(raw, dict):
        raise TargetError("target profile must be a YAML mapping", value=str(path))
    try:
        return TargetProfile(**raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "profile"
        raise TargetError(
            f"invalid target profile {path.name}",
            value=f"{loc}: {err['msg']}",
            fix="see targets/host.yaml for the schema",
        ) from None


@lru_cache(maxsize=1)
def builtin_profiles() -> dict[str, TargetProfile]:
    """All built-in profiles by name."""
    out: dict[str, TargetProfile] = {}
    for p in sorted(_profiles_dir().glob("*.yaml")):
        prof = load_profile_file(p)
        if prof.name in out:
            raise TargetError("duplicate target name", value=prof.name, fix=f"rename it in {p}")
        out[prof.name] = prof
    return out


def get_target(name_or_path: str) -> TargetProfile:
    """Resolve a target by name, alias, or path to a YAML file."""
    if name_or_path.endswith((".yaml", ".yml")) or "/" in name_or_path:
        return load_profile_file(name_or_path)
    profiles = builtin_profiles()
    if name_or_path in profiles:
        return profiles[name_or_path]
    for prof in profiles.values():
        if name_or_path in prof.aliases:
            return prof
    names = sorted(list(profiles) + [a for p in profiles.values() for a in p.aliases])
    close = difflib.get_close_matches(name_or_path, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise TargetError(
        "unknown target",
        value=repr(name_or_path),
        valid=names,
        fix=f"{hint}pass one of these names or a path to a profile YAML",
    )
