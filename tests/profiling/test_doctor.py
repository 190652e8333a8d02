"""`edgekd doctor` against the loopback sshd (tests/latency/sshd.py), with a fake trtexec that
prints a TensorRT 10.3 log: the real summary excerpt of NVIDIA/TensorRT #4177
(tests/latency/data/trt10-summary-issue4177.log) between 10.3 `&&&&` lines, with a
recoverable `[E]` line on stderr, and that writes the engine and profile files trtexec would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.cli.test_cli_runner import invoke, one_line
from tests.latency import sshd

pytestmark = pytest.mark.skipif(sshd.available() is not None, reason=str(sshd.available()))

SUMMARY = Path(__file__).parents[1] / "latency/data/trt10-summary-issue4177.log"


@pytest.fixture(scope="module")
def fake_trtexec(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("trt")
    script = d / "trtexec"
    script.write_text(f"""#!/bin/sh
echo "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] # trtexec $*"
echo "[12/01/2026-10:00:00] [E] [TRT] Requested amount of GPU memory could not be allocated." >&2
for a in "$@"; do
  case "$a" in
    --saveEngine=*) printf engine > "${{a#--saveEngine=}}" ;;
    --exportProfile=*) printf '[{{"count": 1}}]' > "${{a#--exportProfile=}}" ;;
  esac
done
cat {SUMMARY}
echo "&&&& PASSED TensorRT.trtexec [TensorRT v100300] # trtexec $*"
""")
    script.chmod(0o755)
    return script


def test_doctor_checks_a_tensorrt_device(loopback_ssh, fake_trtexec):
    r = invoke("doctor", "--device", loopback_ssh.dest, *loopback_ssh.cli_options(),
               "--target", "jetson-orin-nano-8gb", "--trtexec", str(fake_trtexec),
               "--remote-python", sys.executable, "--json")  # fmt: skip
    assert r.exit_code == 0, (r.stdout, r.stderr)
    rep = json.loads(r.stdout)
    checks = {c["name"]: c for c in rep["checks"]}
    assert checks["ssh and the agent"]["status"] == "ok"
    assert checks["tiny engine"]["status"] == "ok"  # PASSED despite the [E] line
    assert "1 recoverable [E] line" in checks["tiny engine"]["detail"]
    assert checks["trtexec version"]["detail"] == "TensorRT 10.3.0"
    assert checks["tensorrt python"]["status"] == "warn"  # no tensorrt package here
    assert rep["latency"]["p90_ms"] == 10.2996  # the summary's percentile(90%)
    v = rep["versions"]
    assert v["python"] == ".".join(map(str, sys.version_info[:3])) and v["numpy"]
    assert rep["ok"] is True


def test_doctor_without_trtexec_fails_in_one_line(loopback_ssh):
    r = invoke("doctor", "--device", loopback_ssh.dest, *loopback_ssh.cli_options(),
               "--target", "jetson-orin-nano-8gb", "--trtexec", "/nonexistent/trtexec",
               "--remote-python", sys.executable)  # fmt: skip
    one_line(r, "is not ready for jetson-orin-nano-8gb", "trtexec", "/nonexistent/trtexec")
    assert "ok    ssh and the agent" in r.stdout


def test_doctor_on_a_cpu_target_times_onnxruntime(loopback_ssh):
    r = invoke("doctor", "--device", loopback_ssh.dest, *loopback_ssh.cli_options(),
               "--target", "raspberry-pi-5", "--remote-python", sys.executable)  # fmt: skip
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "ok    tiny model" in r.stdout and "is ready for raspberry-pi-5" in r.stdout
