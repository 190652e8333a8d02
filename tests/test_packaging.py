"""pyproject.toml ships every package, and the target profiles as edgekd.profiles."""

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "edgekd").rglob("__init__.py")
    }
    assert on_disk <= listed, sorted(on_disk - listed)
    assert cfg["package-dir"]["edgekd.profiles"] == "targets"
    assert "*.yaml" in cfg["package-data"]["edgekd.profiles"]


def test_console_script_and_deps():
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert proj["scripts"]["edgekd"] == "edgekd.cli.app:main"
    deps = " ".join(proj["dependencies"])
    for name in (
        "timm",
        "onnx",
        "onnxruntime",
        "nvidia-modelopt",
        "typer",
        "rich",
        "pydantic",
        "pyyaml",
        "scikit-learn",
        "requests",
    ):
        assert name in deps, name
    assert {"dev", "tensorrt"} <= set(proj["optional-dependencies"])
