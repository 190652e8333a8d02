"""Published device latencies (targets/evidence/*.csv): reading them, and the figures' source
rules.

Each row is one published figure: a device, a model, the stand-in that rebuilds its
architecture here (a torchvision or timm constructor, random weights), the input, the
engine's precision, the batch, what was measured (`metric`) and the value, with the software
it ran on and, always, a `source` (a URL: for GitHub a file at a commit, with its line) and a
`quote` (the text holding the figure, as published). A row without a source is refused: the
cost model is fitted on these figures, and a figure nobody can check is not evidence.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from edgekd.errors import TargetError
from edgekd.targets import TargetProfile

COLUMNS = (
    "device",
    "model",
    "standin",
    "input",
    "precision",
    "batch",
    "metric",
    "value",
    "runtime_version",
    "jetpack",
    "power_mode",
    "accelerator",
    "source",
    "quote",
)
# what a figure measured; the latency ones are per batch, throughput_fps is images per second
METRICS = (
    "latency_mean_ms",
    "latency_median_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "gpu_compute_mean_ms",
    "gpu_compute_median_ms",
    "throughput_fps",
)
PRECISIONS = ("fp32", "fp16", "int8")
OPTIONAL = ("note",)  # what edgekd read into the row (a device mapping, say), when anything


@dataclass(frozen=True)
class Figure:
    """One published figure (one CSV row), where it came from (`where`: file:line)."""

    device: str
    model: str
    standin: str
    shape: tuple[int, int, int]
    precision: str
    batch: int
    metric: str
    value: float
    runtime_version: str
    jetpack: str
    power_mode: str
    accelerator: str
    source: str
    quote: str
    where: str
    note: str = ""

    @property
    def ms(self) -> float:
        """Milliseconds per batch-1 inference: the latency, or 1000 / images per second."""
        return 1e3 / self.value if self.metric == "throughput_fps" else self.value

    @property
    def group(self) -> tuple:
        """Figures of one model on one device at one precision, at any input size: the
        re-measurements of one thing (several MLPerf rounds, one model at three sizes) are
        held out together, so none of them helps predict another."""
        return (self.device, self.standin, self.precision)

    @property
    def label(self) -> str:
        return f"{self.model} {self.precision} {'x'.join(map(str, self.shape))}"


def evidence_dir() -> Path:
    from edgekd.targets import _profiles_dir

    return _profiles_dir() / "evidence"


def _bad(where: str, what: str, value: object, fix: str) -> TargetError:
    return TargetError(f"bad evidence row {where}: {what}", value=repr(value), fix=fix)


def _figure(row: dict, where: str) -> Figure:
    missing = [c for c in COLUMNS if row.get(c) is None]
    if missing:
        raise _bad(where, "missing columns", missing, f"give every row: {', '.join(COLUMNS)}")
    row = {k: (v or "").strip() for k, v in row.items() if k in COLUMNS + OPTIONAL}
    if not row["source"].startswith(("https://", "http://")):
        raise _bad(
            where,
            "no source",
            row["source"],
            "give the URL the figure comes from (a GitHub file at a commit, with its line)",
        )
    if not row["quote"]:
        raise _bad(where, "no quote", "", "copy the published text that holds the figure")
    if row["metric"] not in METRICS:
        raise _bad(where, "unknown metric", row["metric"], f"use one of {', '.join(METRICS)}")
    if row["precision"] not in PRECISIONS:
        raise _bad(where, "unknown precision", row["precision"], "use fp32, fp16 or int8")
    try:
        shape = tuple(int(d) for d in row["input"].split("x"))
        value, batch = float(row["value"]), int(row["batch"])
    except ValueError:
        raise _bad(
            where, "input, value or batch is not a number", row, "input is CxHxW, e.g. 3x224x224"
        ) from None
    if len(shape) != 3 or min(shape) < 1 or not value > 0 or batch < 1:
        raise _bad(where, "input, value or batch out of range", row, "input CxHxW, value > 0")
    return Figure(
        row["device"],
        row["model"],
        row["standin"],
        shape,  # type: ignore[arg-type]
        row["precision"],
        batch,
        row["metric"],
        value,
        row["runtime_version"],
        row["jetpack"],
        row["power_mode"],
        row["accelerator"],
        row["source"],
        row["quote"],
        where,
        row.get("note", ""),
    )


def load_evidence(folder: str | Path | None = None) -> list[Figure]:
    """Every figure in the folder's *.csv files (sorted by file), each row checked."""
    folder = Path(folder) if folder else evidence_dir()
    out: list[Figure] = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            lacking = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if lacking:
                raise _bad(path.name, "header lacks columns", lacking, "see evidence.COLUMNS")
            for i, row in enumerate(reader, start=2):
                out.append(_figure(row, f"{path.name}:{i}"))
    return out


def unusable(fig: Figure, profiles: dict[str, TargetProfile]) -> str | None:
    """Why the cost model cannot be checked against `fig`, or None when it can."""
    target = profiles.get(fig.device)
    if target is None:
        return "no edgekd profile for this device"
    if target.cost_model is None:
        return "the profile has no cost model"
    if fig.batch != 1:
        return f"batch {fig.batch} (the cost model predicts batch 1)"
    if fig.standin in ("", "none"):
        return "no stand-in rebuilds this model here"
    if fig.accelerator != "gpu":
        return f"runs on {fig.accelerator} (the cost model is the GPU's)"
    if fig.power_mode.lower().startswith("maxq"):
        return "power-limited (MaxQ) clocks: the profile's peaks are at full clocks"
    if fig.precision not in target.precisions:
        return f"{fig.precision} is not one of the profile's precisions"
    return None
