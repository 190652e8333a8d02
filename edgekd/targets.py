"""Target device profiles: the schema, the built-in `targets/*.yaml`, names and aliases.

A profile says which runtime builds the artifact, at which precisions, and what budgets a run
on that device defaults to. Every number carries a source. Profiles load with a safe YAML loader.
"""

from __future__ import annotations

import difflib
import math
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgekd._io import read_yaml_mapping
from edgekd.config import Budgets
from edgekd.errors import TargetError

Precision = Literal["fp32", "fp16", "int8"]
OpClass = Literal["dense_conv", "depthwise_conv", "gemm", "elementwise"]
OP_CLASSES: tuple[str, ...] = ("dense_conv", "depthwise_conv", "gemm", "elementwise")


def _control_char(text: str) -> str | None:
    """The first control, format or line/paragraph separator character in text, named by its
    code point ("U+000A" for a newline); None when there is none."""
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return f"U+{ord(ch):04X}"
    return None


def check_plain(raw: object, where: str = "") -> None:
    """Every string (key or value) in raw is one line of printable text and every number is
    finite; raise ValueError naming the first place that is not.

    Profile strings end up in shell scripts (build/build_engine.sh) and reports, and profile
    numbers in strict JSON: a newline in a description is a command on the device, a NaN
    peak is a NaN latency."""
    if isinstance(raw, str):
        bad = _control_char(raw)
        if bad:
            raise ValueError(f"{where or 'value'} holds a control character ({bad}); "
                             "profile strings must be one line of printable text")  # fmt: skip
    elif isinstance(raw, float) and not math.isfinite(raw):
        raise ValueError(f"{where or 'value'} is {raw}; profile numbers must be finite")
    elif isinstance(raw, dict):
        for k, v in raw.items():
            at = f"{where}.{k}".strip(".")
            check_plain(k, f"{at} (key)")
            check_plain(v, at)
    elif isinstance(raw, (list, tuple)):
        for i, v in enumerate(raw):
            check_plain(v, f"{where}[{i}]")


class CostModelParams(BaseModel):
    """How far below peak the runtime runs each op class, and the fixed cost of one layer."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    efficiency: dict[OpClass, float] = Field(
        description="Fraction of peak ops reached per op class, 0 < e <= 1."
    )
    int8_efficiency_scale: float = Field(
        1.0,
        gt=0,
        le=4,
        description="Extra factor on the INT8 efficiencies (INT8 kernels are "
        "often further from their peak than float ones).",
    )
    layer_overhead_us: float = Field(ge=0, description="Fixed cost per executed layer, in us.")
    bandwidth_efficiency: float = Field(
        0.7, gt=0, le=1, description="Fraction of the memory bandwidth reached."
    )
    sm_fill_mflops: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="GPU targets with gpu_sms: MFLOPs a layer needs per SM to keep every SM "
        "busy at batch 1; a smaller layer runs on part of the GPU (0: never).",
    )

    @model_validator(mode="after")
    def _fractions(self) -> CostModelParams:
        missing = sorted(set(OP_CLASSES) - set(self.efficiency))
        if missing:
            raise ValueError(f"efficiency has no entry for {', '.join(missing)}")
        bad = {k: v for k, v in self.efficiency.items() if not 0 < v <= 1}
        if bad:
            raise ValueError(f"efficiency must lie in (0, 1], got {bad}")
        return self


class PredictionRange(BaseModel):
    """How far off this profile's predictions have been on published figures it was not
    fitted on: a prediction of t ms reads as [low x t, high x t], which held `coverage` of
    those figures."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    low: float = Field(gt=0, description="published / predicted, lower end")
    high: float = Field(gt=0, description="published / predicted, upper end")
    coverage: float = Field(gt=0, lt=1, description="share of held-out figures inside")
    figures: int = Field(ge=1, description="held-out figures the range comes from")
    basis: str = Field(min_length=1, description="which figures, and how they were held out")

    @model_validator(mode="after")
    def _ordered(self) -> PredictionRange:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self

    def of(self, ms: float) -> tuple[float, float]:
        return (ms * self.low, ms * self.high)


class TargetProfile(BaseModel):
    """One device: runtime, precisions, speeds and default budgets, each figure with a source."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="lower-case slug")
    description: str = Field(min_length=1)
    kind: Literal["gpu", "cpu"] = "cpu"
    runtime: Literal["onnxruntime", "tensorrt"]
    runtime_version: str = Field(min_length=1)
    jetpack: str | None = None
    compute_capability: str | None = None
    precisions: list[Precision] = Field(min_length=1)
    peak_tops: dict[Precision, float] = Field(
        default_factory=dict, description="Dense peak tera-ops/s per precision (FLOPs for float)."
    )
    memory_bandwidth_gbs: float | None = Field(None, gt=0)
    memory_gb: float | None = Field(None, gt=0)
    gpu_sms: int | None = Field(None, ge=1, description="streaming multiprocessors (GPU)")
    dla_cores: int = Field(0, ge=0)
    cost_model: CostModelParams | None = None
    fit: dict | None = Field(None, description="How the cost model was fitted, and its error.")
    prediction_range: PredictionRange | None = Field(
        None, description="The held-out error of the cost model, as a range around a prediction."
    )
    measured: bool = Field(
        False, description="True when edgekd runs on this device and measures latency itself."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for ONNX Runtime targets.")
    aliases: list[str] = Field(default=[], description="other names, lower-case slugs")
    default_budgets: Budgets = Budgets()
    sources: dict[str, str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _plain(cls, raw: object) -> object:
        check_plain(raw)
        return raw

    @model_validator(mode="after")
    def _consistent_and_sourced(self) -> TargetProfile:
        needed = {"runtime", "precisions"}
        for key in (
            "threads",
            "compute_capability",
            "memory_bandwidth_gbs",
            "memory_gb",
            "gpu_sms",
            "cost_model",
            "peak_tops",
            "prediction_range",
        ):
            if getattr(self, key):
                needed.add(key)
        if self.dla_cores:
            needed.add("dla_cores")
        missing = sorted(needed - set(self.sources))
        if missing:
            raise ValueError(f"sources has no entry for {', '.join(missing)}")
        bad_peaks = {p: v for p, v in self.peak_tops.items() if v <= 0}
        if bad_peaks:
            raise ValueError(f"peak_tops must be positive, got {bad_peaks}")
        if self.cost_model is not None:
            lacking = [p for p in self.precisions if p not in self.peak_tops]
            if lacking or not self.memory_bandwidth_gbs:
                raise ValueError(
                    "a cost model needs peak_tops for every precision "
                    f"(missing {', '.join(lacking) or 'none'}) and memory_bandwidth_gbs"
                )
        return self

    @property
    def predicts(self) -> bool:
        """True when latency on this target comes from the cost model rather than a clock."""
        return not self.measured


def user_profiles_dir() -> Path:
    """Where calibrated profiles go: $EDGEKD_HOME/targets, else ~/.config/edgekd/targets."""
    import os

    home = os.environ.get("EDGEKD_HOME")
    base = (
        Path(home)
        if home
        else Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "edgekd"
    )
    return base / "targets"


def _profiles_dir() -> Path:
    """targets/ in a source checkout; edgekd/profiles/ where a wheel installed them."""
    here = Path(__file__).resolve().parent
    source_tree = here.parent / "targets"
    return source_tree if source_tree.is_dir() else here / "profiles"


def load_profile_file(path: str | Path) -> TargetProfile:
    """Load and validate one profile YAML (safe loader: no object tags)."""
    path = Path(path)
    raw = read_yaml_mapping(path, TargetError, "target profile")
    try:
        return TargetProfile(**raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise TargetError(
            f"invalid target profile {path.name}",
            value=f"{loc}: {msg}" if loc else msg,
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
    user = user_profiles_dir() / f"{name_or_path}.yaml"
    if user.is_file():  # a calibrated profile (edgekd profile --calibrate) wins
        return load_profile_file(user)
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
