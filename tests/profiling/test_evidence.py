"""targets/evidence: every published figure has a source, and a row without one is refused."""

from __future__ import annotations

import csv

import pytest

from edgekd.errors import TargetError
from edgekd.profiling.evidence import COLUMNS, load_evidence, unusable
from edgekd.targets import builtin_profiles

ROW = {
    "device": "jetson-nano",
    "model": "torchvision resnet18",
    "standin": "torchvision.models.resnet18",
    "input": "3x224x224",
    "precision": "fp16",
    "batch": "1",
    "metric": "latency_mean_ms",
    "value": "11.4",
    "runtime_version": "",
    "jetpack": "",
    "power_mode": "",
    "accelerator": "gpu",
    "source": "https://github.com/o/r/blob/0123/docs/x.md#L8",
    "quote": "| resnet18 | ... | 11.4 |",
}


def write(tmp_path, *rows, name="e.csv"):
    path = tmp_path / name
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return tmp_path


def test_every_committed_figure_has_a_source_and_a_quote():
    figures = load_evidence()  # raises on a row without them
    assert len(figures) >= 60
    for f in figures:
        assert f.source.startswith("https://"), f.where
        assert f.quote, f.where
    # and the published value is in the quoted text, where the quote is a table row
    for f in figures:
        if f.metric.endswith("_ms") and f.quote.startswith("|"):
            assert str(f.value).rstrip("0").rstrip(".") in f.quote.replace(",", ""), f.where


@pytest.mark.parametrize(
    "field, value, needle",
    [
        ("source", "", "no source"),
        ("source", "my notes", "no source"),
        ("quote", "", "no quote"),
        ("metric", "fps", "unknown metric"),
        ("precision", "bf16", "unknown precision"),
        ("input", "224x224", "out of range"),
        ("value", "fast", "not a number"),
        ("value", "0", "out of range"),
    ],
)
def test_a_bad_row_is_refused_naming_file_and_line(tmp_path, field, value, needle):
    folder = write(tmp_path, ROW, {**ROW, field: value})
    with pytest.raises(TargetError) as e:
        load_evidence(folder)
    assert needle in str(e.value) and "e.csv:3" in str(e.value)


def test_a_good_row_reads_back_and_fps_becomes_ms(tmp_path):
    folder = write(tmp_path, ROW, {**ROW, "metric": "throughput_fps", "value": "500"})
    a, b = load_evidence(folder)
    assert a.shape == (3, 224, 224) and a.ms == 11.4 and a.where == "e.csv:2"
    assert b.ms == pytest.approx(2.0)  # 1000 / 500 images per second at batch 1
    assert a.group == b.group  # the same model, device and precision


def test_what_the_fit_cannot_use_says_why(tmp_path):
    from dataclasses import replace

    p = builtin_profiles()
    (f,) = load_evidence(write(tmp_path, ROW))
    assert unusable(f, p) is None
    assert "no stand-in" in unusable(replace(f, standin="none"), p)
    assert "dla" in unusable(replace(f, accelerator="dla"), p)
    assert "batch 8" in unusable(replace(f, batch=8), p)
    assert "int8 is not" in unusable(replace(f, precision="int8"), p)  # the Nano has no INT8
    assert "no edgekd profile" in unusable(replace(f, device="jetson-tx2"), p)
