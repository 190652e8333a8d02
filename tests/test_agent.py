"""The device agent's facts (Jetson model, L4T release, power mode, fixed clocks), read from a
fake device root; its profile/accuracy commands are covered through SSH in
tests/latency/test_remote.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edgekd import agent


def test_l4t_release_and_power_mode_parsers():
    line = "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64"
    assert agent.parse_l4t_release(line) == "35.4.1"
    assert agent.parse_l4t_release("no release here") is None
    assert agent.parse_power_mode("NV Power Mode: MAXN\n0\n") == "MAXN"
    assert agent.parse_power_mode("NV Power Mode: 15W\n2") == "15W"
    assert agent.parse_power_mode("") is None


def _devfreq(root: Path, name: str, lo: int, hi: int) -> None:
    d = root / "sys/class/devfreq" / name
    d.mkdir(parents=True)
    (d / "min_freq").write_text(f"{lo}\n")
    (d / "max_freq").write_text(f"{hi}\n")


def test_facts_on_a_fake_jetson_root(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_text("NVIDIA Jetson Orin Nano Developer Kit\x00")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.0, GCID: 1\n")
    _devfreq(tmp_path, "17000000.gpu", 306000000, 1020000000)
    f = agent.facts(str(tmp_path))
    assert f["jetson"] and f["model"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert f["l4t"] == "36.4.0"
    assert f["clocks_fixed"] is False  # min != max: jetson_clocks was not run
    assert "power_mode" in f  # nvpmodel is absent here: None


def test_clocks_fixed_when_min_equals_max(tmp_path):
    _devfreq(tmp_path, "17000000.gpu", 1020000000, 1020000000)
    dirs = list((tmp_path / "sys/class/devfreq").glob("*"))
    assert agent.clocks_fixed(dirs) is True
    assert agent.clocks_fixed([]) is None


def test_facts_off_a_jetson(tmp_path):
    assert agent.facts(str(tmp_path))["jetson"] is False


def test_agent_cli_facts_and_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edgekd.agent", "facts", "--json"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "jetson" in json.loads(proc.stdout)
    bad = subprocess.run(
        [sys.executable, "-m", "edgekd.agent", "profile", str(tmp_path / "none.onnx"), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 1 and bad.stderr.startswith("error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_percentiles_match_numpy():
    import numpy as np

    xs = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0]
    s = agent.summarize(xs)
    assert s["p50_ms"] == np.percentile(xs, 50) and s["p90_ms"] == np.percentile(xs, 90)
    assert s["min_ms"] == 1.0 and s["iters"] == 6
