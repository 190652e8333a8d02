"""report.json as a versioned pydantic model, so CI scripts can rely on its fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

REPORT_SCHEMA_VERSION = "1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Latency(_Model):
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    throughput_ips: float
    batch: int
    threads: int
    warmup: int
    iters: int
    runtime: str
    measured: bool
    attempts: int = 1  # measurements taken; more when the first ones were noisy
    noise: str | None = None  # why the figure is unreliable, when it is
    # predicted only: the range the profile's held-out error gives, and the share it held
    range_ms: list[float] | None = None
    range_coverage: float | None = None


class Gate(_Model):
    name: str  # accuracy | latency | size
    passed: bool
    value: float
    limit: float
    unit: str
    detail: str
    caution: str | None = None  # a predicted latency whose range straddles the budget


class Verdict(_Model):
    passed: bool
    exit_code: int
    gates: list[Gate]


class ModelMetrics(_Model):
    path: str
    precision: str
    accuracy: float
    latency: Latency
    size_mb: float
    agreement: float | None = None  # top-1 agreement with the teacher's ONNX, percent
    sha256: str | None = None
    params: int | None = None
    float_conv_gemm_left: int | None = None  # INT8 only: Conv/Gemm the runtime left in float
    gflops: float | None = None  # per image, from the ONNX graph
    parity: float | None = None  # top-1 agreement (%) of this ONNX in ORT with torch
    device_accuracy: float | None = None  # top-1 (%) of the artifact as built on the device
    device_agreement: float | None = None  # its top-1 agreement (%) with ORT here
    device_runtime: str | None = None
    trtexec_log: str | None = None  # run-relative path of the device's trtexec log
    weights: str | None = None  # which student weights this artifact holds (KD, PTQ or QAT)


class Parity(_Model):
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    samples: int
    trained_graph: bool | None = None  # int8-ort: written from the QAT-trained ORT graph itself


class Report(_Model):
    schema_version: str = REPORT_SCHEMA_VERSION
    edgekd_version: str
    run_dir: str
    target: str
    runtime: str
    latency_source: str
    data: dict
    budgets: dict
    verdict: Verdict
    teacher: ModelMetrics
    student: dict  # name, params, chosen_by (given|auto|search), the search's pick
    variants: dict[str, ModelMetrics]
    artifact: ModelMetrics
    selection_reason: str
    speedup_vs_teacher_p90: float
    accuracy_drop: float
    distill: dict
    quantization: dict
    export: dict
    parity: dict[str, Parity]
    environment: dict
    stages: list[dict]
    wall_s: float
    warnings: list[str] = []  # what makes a figure doubtful (see pipeline.summary.warnings)
    layers: dict | None = None  # cost-model breakdown of the shipped artifact on the target
    device: dict | None = None  # facts of the device reached with --remote (Jetson model...)
