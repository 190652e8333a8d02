"""report.html and junit.xml rendered from a report.json (the sample is a real demo run's)."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml
from PIL import Image

from edgekd.report.html import render_html
from edgekd.report.junit import render_junit

SAMPLE = json.loads((Path(__file__).parent / "sample_report.json").read_text())


def _missed(report: dict) -> dict:
    r = copy.deepcopy(report)
    r["verdict"]["passed"] = False
    r["verdict"]["exit_code"] = 2
    r["verdict"]["gates"].append(
        {
            "name": "latency",
            "passed": False,
            "value": 0.2,
            "limit": 0.1,
            "unit": "ms",
            "detail": "p90",
        }
    )
    return r


def test_html_is_self_contained_with_verdict_tables_and_plots():
    page = render_html(SAMPLE)
    assert 'id="verdict"' in page and "PASS" in page
    assert "<table>" in page and "Teacher vs student" in page and "(shipped)" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched
    # the sample's student came from --student auto: the page says why
    assert "<b>Why this student:</b> <code>mobilenetv3_small_050</code>" in page
    assert SAMPLE["student"]["search"]["how"].split(":")[0] in page
    given = copy.deepcopy(SAMPLE)
    given["student"] |= {"chosen_by": "given", "search": None}
    assert "Why this student" not in render_html(given)
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3  # latency chart, training curves, per-layer breakdown
    for b64 in images:
        img = Image.open(io.BytesIO(base64.b64decode(b64)))
        img.load()
        assert img.width > 100 and img.height > 100
        assert len(set(img.convert("L").getdata())) > 2  # something is drawn


def test_html_says_budget_missed():
    page = render_html(_missed(SAMPLE))
    assert "BUDGET MISSED" in page and "<b>FAIL</b>" in page


@pytest.mark.parametrize("report,failures", [(SAMPLE, 0), (_missed(SAMPLE), 1)])
def test_junit_parses_with_one_case_per_gate(tmp_path, report, failures):
    p = tmp_path / "junit.xml"
    p.write_text(render_junit(report))
    xml = JUnitXml.fromfile(str(p))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    names = [c.name for c in suite]
    for g in report["verdict"]["gates"]:
        assert f"budget.{g['name']}" in names
    assert "artifact.produced" in names
    failed = [c for c in suite if any(isinstance(r, Failure) for r in c.result)]
    assert len(failed) == failures == suite.failures
    assert suite.tests == len(names)
    if failures:
        assert failed[0].name == "budget.latency"


def _hostile(report: dict) -> dict:
    """A report whose free-text strings (data folder, selection reason, gate detail) hold
    markup, table and line breaks, and characters XML 1.0 cannot hold."""
    r = copy.deepcopy(report)
    evil = "imgs<script>alert(1)</script>|x\nline\x01\x1b[2J"
    r["data"]["name"] = evil
    r["selection_reason"] = evil
    r["artifact"]["path"] = "build/a\x01b.onnx"
    r["verdict"]["gates"][0]["detail"] = evil
    return r


def test_markdown_keeps_hostile_names_as_text_on_their_line():
    from edgekd.report.writer import render_markdown

    plain = render_markdown(SAMPLE)
    md = render_markdown(_hostile(SAMPLE))
    assert "<script" not in md and "&lt;script&gt;" in md
    assert "\x01" not in md and "\x1b" not in md
    assert md.count("\n") == plain.count("\n")  # no line broken, no line added
    gate_row = next(
        ln
        for ln in md.splitlines()
        if ln.startswith(f"| {SAMPLE['verdict']['gates'][0]['name']} (")
    )
    assert gate_row.count(" | ") == 3  # the cell's | is escaped: still four columns


def test_junit_is_well_formed_xml_whatever_the_names_hold():
    from xml.etree import ElementTree as ET

    xml = render_junit(_hostile(SAMPLE))
    root = ET.fromstring(xml.split("\n", 1)[1])  # parses: no raw control characters
    texts = " ".join(el.text or "" for el in root.iter()) + " ".join(
        v for el in root.iter() for v in el.attrib.values()
    )
    assert "<script>" in texts and "\ufffd" in texts  # markup kept as escaped text


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e3])
@pytest.mark.parametrize("spread", [1.5, 40.0, 1e5])
def test_latency_chart_axis_labels_never_overlap(scale, spread):
    """Issue 25: the log axis's labels overlapped. Drawn for latencies within a factor
    `spread` of each other, the x tick labels that are shown have disjoint boxes."""
    from edgekd.report.plots import _fig, latency_figure

    r = copy.deepcopy(SAMPLE)
    models = [r["teacher"], *r["variants"].values()]
    for i, m in enumerate(models):
        base = scale * spread ** (i / max(1, len(models) - 1))
        m["latency"].update(p50_ms=base, p90_ms=base * 1.1, p99_ms=base * 1.2)
    r["budgets"]["latency_ms"] = None
    fig = latency_figure(r)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels(which="both")
             if t.get_text() and lo <= t.get_position()[0] <= hi]  # fmt: skip
    assert len(boxes) >= 2, [t.get_text() for t in ax.get_xticklabels()]
    boxes.sort(key=lambda b: b.x0)
    for a, b in zip(boxes, boxes[1:], strict=False):
        assert a.x1 <= b.x0, "two x tick labels overlap"
    _fig().close(fig)
