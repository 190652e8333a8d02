"""report.html rendered by a real browser (headless Chromium) to a PNG, and its DOM checked."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from edgekd.report.html import render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (make test installs it with apt-get when it can)",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
SAMPLE = json.loads((Path(__file__).parent / "sample_report.json").read_text())


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_report_renders_in_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(SAMPLE))
    shot = tmp_path / "report.png"
    r = _chromium(tmp_path, "--window-size=1200,3000", f"--screenshot={shot}", page.as_uri())
    assert shot.exists(), r.stderr[-500:]
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 3000)
    # the page is drawn: many distinct colours (text, green verdict banner, plots)
    assert len(set(img.resize((300, 750)).getdata())) > 50
    # the green PASS banner near the top
    banner = img.crop((60, 60, 1140, 160)).getcolors(1 << 16)
    assert any(g > r_ + 10 and g > b for _count, (r_, g, b) in banner), "no green verdict banner"

    dom = _chromium(tmp_path, "--dump-dom", page.as_uri()).stdout
    assert 'id="verdict"' in dom and "PASS" in dom
    assert dom.count("<table>") >= 4
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', dom)
    assert images == ["latency per artifact", "training curves", "slowest layers"]


def test_every_embedded_image_decodes():
    page = render_html(SAMPLE)
    import base64

    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        Image.open(io.BytesIO(base64.b64decode(b64))).verify()
