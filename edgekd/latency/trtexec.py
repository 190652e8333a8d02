"""Read what `trtexec` prints: the performance summary, the version, and failures.

Works for every summary format from TensorRT 8.2 to 11.1 (sampleReporting.cpp `printEpilog`:
8.2 prints one percentile and an End-to-End line, 8.5+ print several percentiles, H2D / D2H
latency), with or without the `[date] [I]` prefixes, and the `&&&&` header with or without the
`[b<build>]` tag TensorRT 10.4+ adds (samples/common/logging.h@v10.4.0:383).

Pass or fail comes from the final `&&&& PASSED|FAILED` line (and, for a remote run, the exit
code): successful builds print recoverable `[E]` lines (tactic out of memory, "Skipping
tactic"), which are kept in `errors` as diagnostics and do not fail a PASSED run.

Per-layer profiles written by `--exportProfile` (a JSON list: a `{"count": N}` entry, then one
entry per layer with `name`, `timeMs`, `averageMs`, `medianMs`, `percentage`) are read by
`parse_layer_profile`; trtexec writes names unescaped and numbers as C++ streams print them
(`nan`, `-nan`, `inf`), so a file JSON cannot read is parsed entry by entry instead.

Anything that is not a trtexec log raises `TrtexecParseError` (an `EdgekdError`), never
another exception: logs come from remote machines and may be cut off.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from edgekd.errors import EdgekdError, RemoteError


class TrtexecParseError(EdgekdError):
    """The text is not a trtexec log edgekd can read."""


@dataclass
class Stats:
    """One timing line of the summary, in milliseconds."""

    min: float | None = None
    max: float | None = None
    mean: float | None = None
    median: float | None = None
    percentiles: dict[float, float] = field(default_factory=dict)


@dataclass
class TrtexecResult:
    status: str | None  # PASSED / FAILED, from the `&&&&` line
    version: str | None  # "10.3.0" from [TensorRT v100300]
    version_code: int | None
    command: str | None
    throughput_qps: float | None
    stats: dict[str, Stats]  # "latency", "enqueue", "h2d", "gpu_compute", "d2h", "end_to_end"
    total_host_walltime_s: float | None
    total_gpu_compute_s: float | None
    errors: list[str]  # every [E] line: diagnostics, also in a PASSED run

    @property
    def passed(self) -> bool:
        """The final `&&&&` status is PASSED ([E] lines of a passing run do not count)."""
        return self.status == "PASSED"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stats"] = {
            k: {**v, "percentiles": {str(p): x for p, x in v["percentiles"].items()}}
            for k, v in d["stats"].items()
        }
        return d


_PREFIX = re.compile(r"^(\[[^\]]*\]\s*)*")  # [03/11/2022-14:57:03] [I] ...
_HEADER = re.compile(
    r"&&&&\s+(RUNNING|PASSED|FAILED)\s+TensorRT\.trtexec\s*(?:\[TensorRT v(\d+)\])?"
    r"\s*(?:\[b\d+\])?\s*(?:#\s*(.*))?"
)
_STAT_LINES = {
    "Latency": "latency",
    "Enqueue Time": "enqueue",
    "H2D Latency": "h2d",
    "GPU Compute Time": "gpu_compute",
    "D2H Latency": "d2h",
    "End-to-End Host Latency": "end_to_end",
}
_NUM = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_FIELD = re.compile(rf"(min|max|mean|median)\s*=?\s*{_NUM}\s*ms")
_PCT = re.compile(rf"percentile\(\s*{_NUM}\s*%\)\s*=?\s*{_NUM}\s*ms")


def version_from_code(code: int) -> str:
    """TensorRT's packed version: 8400 -> 8.4.0, 8601 -> 8.6.1, 100300 -> 10.3.0."""
    major, rest = divmod(code, 1000) if code < 100000 else divmod(code, 10000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def _stats(body: str) -> Stats:
    s = Stats()
    for name, value in _FIELD.findall(body):
        setattr(s, name, float(value))
    for pct, value in _PCT.findall(body):
        s.percentiles[float(pct)] = float(value)
    return s


def parse_trtexec_log(text: str) -> TrtexecResult:
    """Parse trtexec's console output (see the module docstring)."""
    if not isinstance(text, str):
        raise TrtexecParseError("trtexec log must be text", value=type(text).__name__)
    status = version = command = None
    version_code: int | None = None
    throughput = walltime = gpu_total = None
    stats: dict[str, Stats] = {}
    errors: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        header = _HEADER.search(line)
        if header:
            state, code, cmd = header.groups()
            if state != "RUNNING" or status is None:
                status = None if state == "RUNNING" else state
            if code and code.isdigit() and len(code) <= 7:
                version_code = int(code)
                version = version_from_code(version_code)
            command = (cmd or command or "").strip() or None
            continue
        body = _PREFIX.sub("", line)
        if "[E]" in line or body.startswith(("Error", "ERROR")):
            errors.append(body[:500])
            continue
        key, sep, rest = body.partition(":")
        if not sep:
            continue
        key = key.strip()
        try:
            if key == "Throughput":
                throughput = float(rest.split()[0])
            elif key == "Total Host Walltime":
                walltime = float(rest.split()[0])
            elif key == "Total GPU Compute Time":
                gpu_total = float(rest.split()[0])
            elif key in _STAT_LINES:
                s = _stats(rest)
                if s.mean is not None or s.median is not None:
                    stats[_STAT_LINES[key]] = s
        except (ValueError, IndexError):
            continue  # a cut-off line; the rest of the log still counts
    if status is None and version is None and not stats and throughput is None:
        raise TrtexecParseError(
            "not a trtexec log",
            value=(text.strip().splitlines() or ["(empty)"])[0][:80],
            fix="pass the console output of trtexec (with its &&&& and summary lines)",
        )
    return TrtexecResult(
        status, version, version_code, command, throughput, stats, walltime, gpu_total, errors
    )


@dataclass
class LayerTime:
    name: str
    average_ms: float
    median_ms: float | None
    percentage: float | None


def parse_layer_profile(text: str) -> list[LayerTime]:
    """Per-layer times from trtexec's `--exportProfile` JSON, slowest first."""
    try:
        data = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        data = _tolerant_profile(text) if isinstance(text, str) else None
        if not data:
            raise TrtexecParseError(
                "layer profile is not JSON",
                fix="pass the file trtexec wrote with --exportProfile",
            ) from None
    if not isinstance(data, list):
        raise TrtexecParseError("layer profile must be a JSON list", value=type(data).__name__)
    layers = []
    for entry in data:
        if not isinstance(entry, dict) or "name" not in entry:
            continue  # the leading {"count": N}
        try:
            avg = float(entry["averageMs"])
            med = float(entry["medianMs"]) if "medianMs" in entry else None
            pct = float(entry["percentage"]) if "percentage" in entry else None
        except (KeyError, TypeError, ValueError):
            raise TrtexecParseError(
                "layer profile entry without a numeric averageMs", value=str(entry)[:80]
            ) from None
        if avg != avg or avg in (float("inf"), float("-inf")):
            continue  # a layer trtexec could not time: it teaches nothing
        layers.append(LayerTime(str(entry["name"]), avg, med, pct))
    return sorted(layers, key=lambda layer: -layer.average_ms)


_ENTRY = re.compile(
    r'\{\s*"name"\s*:\s*"(?P<name>.*?)"\s*,\s*"timeMs"\s*:\s*(?P<time>[^,}]+),\s*'
    r'"averageMs"\s*:\s*(?P<avg>[^,}]+)(?:,\s*"medianMs"\s*:\s*(?P<med>[^,}]+))?'
    r'(?:,\s*"percentage"\s*:\s*(?P<pct>[^,}]+))?\s*\}'
)


def _tolerant_profile(text: str) -> list[dict]:
    """Entries of a profile JSON that json cannot read (unescaped quotes in a name, `nan`)."""

    def num(v: str | None) -> float | None:
        if v is None:
            return None
        try:
            return float(v.strip().lstrip("+"))  # float() reads nan, -nan, inf
        except ValueError:
            return None

    out = []
    for m in _ENTRY.finditer(text):
        entry = {"name": m["name"], "averageMs": num(m["avg"])}
        if m["med"] is not None:
            entry["medianMs"] = num(m["med"])
        if m["pct"] is not None:
            entry["percentage"] = num(m["pct"])
        if entry["averageMs"] is not None:
            out.append(entry)
    return out


def trtexec_latency(result, where: str) -> dict:
    """A trtexec summary as edgekd's latency record: host latency (H2D + compute + D2H) per
    inference; p90 from the printed percentiles (TensorRT < 8.6 prints one: asked for 90)."""
    lat = result.stats.get("latency") or result.stats.get("gpu_compute")
    if lat is None:
        raise RemoteError("trtexec printed no latency summary", fix="see the trtexec log")
    pct = lat.percentiles
    return {
        "min_ms": lat.min,
        "p50_ms": pct.get(50.0, lat.median),
        "p90_ms": pct.get(90.0, pct.get(99.0, lat.max)),
        "p99_ms": pct.get(99.0, lat.max),
        "mean_ms": lat.mean,
        "throughput_ips": result.throughput_qps,
        "batch": 1,
        "threads": 0,
        "warmup": 0,
        "iters": 0,
        "runtime": f"TensorRT {result.version} ({where})",
        "measured": True,
    }
