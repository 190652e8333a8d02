"""--config recipes (flags win), --print-config, `edgekd report`, `edgekd report --schema`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from typer.testing import CliRunner

from edgekd.cli.app import app

runner = CliRunner()
SAMPLE = Path(__file__).resolve().parents[1] / "report" / "sample_report.json"


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_flags_beat_recipe_beats_defaults(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("teacher: timm:resnet10t\nepochs: 7\nqat-epochs: 0\nlr: 0.5\n")
    r = invoke("compress", "--config", str(recipe), "--epochs", "3", "--print-config")
    assert r.exit_code == 0, r.stderr
    cfg = yaml.safe_load(r.stdout)
    assert cfg["teacher"] == "timm:resnet10t"  # from the recipe
    assert cfg["epochs"] == 3  # the flag wins
    assert cfg["qat_epochs"] == 0 and cfg["lr"] == 0.5  # recipe, dashes accepted
    assert cfg["batch_size"] == 64  # default


def test_printed_config_is_a_valid_recipe(tmp_path):
    r = invoke("compress", "timm:resnet10t", "--epochs", "4", "--print-config")
    p = tmp_path / "again.yaml"
    p.write_text(r.stdout)
    again = yaml.safe_load(invoke("compress", "--config", str(p), "--print-config").stdout)
    assert again == yaml.safe_load(r.stdout)


def test_recipe_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\n")
    r = invoke("compress", "x", "--config", str(bad))
    assert r.exit_code == 1 and "unknown key in bad.yaml: 'epochz'" in r.stderr
    bad.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    r = invoke("compress", "x", "--config", str(bad))
    assert r.exit_code == 1 and "not valid YAML" in r.stderr
    r = invoke("compress", "--epochs", "2")
    assert r.exit_code == 1 and "no teacher given" in r.stderr


def test_example_recipes_are_valid():
    root = Path(__file__).resolve().parents[2] / "examples" / "recipes"
    for recipe in sorted(root.glob("*.yaml")):
        r = invoke("compress", "--config", str(recipe), "--print-config")
        assert r.exit_code == 0, (recipe, r.stderr)


def test_report_regenerates_from_json(tmp_path):
    shutil.copy(SAMPLE, tmp_path / "report.json")
    r = invoke("report", str(tmp_path))
    assert r.exit_code == 0, r.stderr
    for name in ("report.md", "report.html", "junit.xml"):
        assert (tmp_path / name).stat().st_size > 0
    assert invoke("report", str(tmp_path / "nothing")).exit_code == 1


def test_report_schema_is_json_schema():
    r = invoke("report", "--schema")
    s = json.loads(r.stdout)
    assert s["title"] == "Report" and "verdict" in s["properties"]
    assert s["additionalProperties"] is False
