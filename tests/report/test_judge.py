from edgekd.config import Budgets
from edgekd.report import EXIT_BUDGET_MISSED, EXIT_OK, judge, render_markdown

ART = {
    "accuracy": 98.0,
    "size_mb": 2.0,
    "latency": {"p50_ms": 0.1, "p90_ms": 0.2, "p99_ms": 0.3, "threads": 1, "measured": True},
}


def test_all_met():
    v = judge(Budgets(latency_ms=0.5, max_accuracy_drop=2.0, max_model_mb=3), 99.0, ART)
    assert v.passed and v.exit_code == EXIT_OK
    assert [g.name for g in v.gates] == ["accuracy", "latency", "size"]
    assert v.gates[0].value == 1.0


def test_latency_missed_at_the_budgets_percentile():
    v = judge(Budgets(latency_ms=0.25, percentile=99), 99.0, ART)
    lat = next(g for g in v.gates if g.name == "latency")
    assert not lat.passed and lat.value == 0.3 and v.exit_code == EXIT_BUDGET_MISSED


def test_accuracy_drop_exactly_at_limit_passes():
    assert judge(Budgets(max_accuracy_drop=1.0), 99.0, ART).passed


def test_no_budgets_passes_with_no_gates():
    v = judge(Budgets(max_accuracy_drop=None), 99.0, ART)
    assert v.passed and v.gates == []


def test_markdown_is_rendered_from_json_alone(tmp_path):
    import json
    from pathlib import Path

    sample = json.loads((Path(__file__).parent / "sample_report.json").read_text())
    md = render_markdown(sample)
    assert md.startswith("# edgekd report — PASS")
    assert "| teacher | fp32 |" in md and "(shipped)" in md


def test_sample_report_validates_against_the_schema():
    import json
    from pathlib import Path

    from edgekd.report import REPORT_SCHEMA_VERSION, Report

    sample = json.loads((Path(__file__).parent / "sample_report.json").read_text())
    r = Report.model_validate(sample)
    assert r.schema_version == REPORT_SCHEMA_VERSION


def test_parity_gate():
    art = {**ART, "parity": 99.4}
    v = judge(Budgets(max_accuracy_drop=None, min_parity=99.5), 99.0, art)
    (g,) = v.gates
    assert g.name == "parity" and not g.passed and g.value == 99.4 and v.exit_code == 2
    assert judge(Budgets(max_accuracy_drop=None, min_parity=99.0), 99.0, art).passed
