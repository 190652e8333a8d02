"""Shared fixtures: the digits data, a quickly trained digits teacher, and a CLI runner."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
warnings.filterwarnings("ignore")
# calibrated profiles of the machine running the tests must not leak into them
os.environ["EDGEKD_HOME"] = tempfile.mkdtemp(prefix="edgekd-home-")


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real `edgekd` command line in a subprocess (no stdin)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "edgekd", *args],
        cwd=cwd or ROOT,
        env=env,
        text=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 1, exactly one non-empty stderr line starting 'error:', no traceback."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in proc.stderr
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


@pytest.fixture(scope="session")
def digits():
    from edgekd.data.digits import digits_bundle

    return digits_bundle()


@pytest.fixture(scope="session")
def small_digits(digits):
    """A 256 / 128 image slice of digits, to keep training tests fast."""
    from torch.utils.data import Subset

    from edgekd.data.bundle import DataBundle

    return DataBundle(
        name="digits-small",
        train=Subset(digits.train, range(256)),
        val=Subset(digits.val, range(128)),
        calib_source=digits.calib_source,
        num_classes=10,
        input_shape=(3, 32, 32),
        class_names=digits.class_names,
        fingerprint="small",
    )


@pytest.fixture(scope="session")
def train_teacher_module():
    spec = importlib.util.spec_from_file_location(
        "train_teacher", ROOT / "examples/digits/train_teacher.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory, train_teacher_module) -> Path:
    """A resnet18 trained 3 epochs on digits, saved as an edgekd checkpoint.

    Trained once per test session, not once per xdist worker: the first worker to need it
    trains it under a file lock in the session's shared temp root, the others wait for it and
    reuse the file (read only: tests copy it before changing anything)."""
    import fcntl

    from edgekd.models import save_checkpoint

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = shared / "digits-teacher" / "teacher.pt"
    path.parent.mkdir(exist_ok=True)
    with open(shared / "digits-teacher.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            model, data, _ = train_teacher_module.train(
                "resnet18", epochs=3, lr=3e-3, batch_size=64, seed=0
            )
            save_checkpoint(path, model, "resnet18", data.num_classes, data.input_shape)
    return path


@pytest.fixture(scope="session")
def loopback_ssh(tmp_path_factory):
    """A throwaway sshd on 127.0.0.1 (tests/latency/sshd.py); skips where none can run."""
    from tests.latency import sshd

    reason = sshd.available()
    if reason:
        pytest.skip(reason)
    box, proc = sshd.start(tmp_path_factory.mktemp("sshd"))
    yield box
    proc.terminate()
    proc.wait(timeout=10)
