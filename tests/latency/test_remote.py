"""The SSH runner against a real sshd on 127.0.0.1 (started here with a throwaway key), and
`edgekd profile --device` through it: the agent measures latency and accuracy 'on the device'.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from edgekd.errors import RemoteError
from edgekd.latency.remote import RemoteRunner, parse_destination
from tests.conftest import assert_one_line_error, run_cli
from tests.latency import sshd

pytestmark = pytest.mark.skipif(sshd.available() is not None, reason=str(sshd.available()))


@pytest.fixture(scope="module")
def ssh(loopback_ssh):
    return loopback_ssh


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    from edgekd.export import export_onnx
    from edgekd.models import create_timm

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "lcnet.onnx"
    export_onnx(create_timm("lcnet_050", 10).eval(), path, (3, 32, 32))
    return path


def runner(ssh, **kw) -> RemoteRunner:
    return RemoteRunner(ssh.dest, ssh.options, **kw)


def test_arguments_are_shell_quoted(ssh):
    nasty = "a b; echo INJECTED $(whoami) `id` 'q' \"d\""
    out = runner(ssh).run(["printf", "%s", nasty]).stdout.decode()
    assert out == nasty


def test_files_round_trip_and_workdir_is_removed(ssh, tmp_path):
    r = runner(ssh)
    src = tmp_path / "in file $x.bin"
    src.write_bytes(bytes(range(256)) * 10)
    with r.workdir() as wd:
        r.put(src, f"{wd}/weird name $HOME.bin")
        got = r.get(f"{wd}/weird name $HOME.bin", tmp_path / "back.bin")
        assert got.read_bytes() == src.read_bytes()
        kept = wd
    assert r.run(["test", "-e", kept], check=False).returncode != 0


def test_profile_cpu_target_on_the_device_with_accuracy(ssh, onnx_model):
    proc = run_cli(
        "profile", str(onnx_model), "--target", "raspberry-pi-5", "--device", ssh.dest,
        *ssh.cli_options(), "--remote-python", sys.executable, "--iters", "20",
        "--warmup", "3", "--data", "digits", "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    m = r["measured"]
    assert m["measured"] is True and m["iters"] == 20 and m["threads"] == 4  # the Pi's 4 cores
    assert 0 < m["min_ms"] <= m["p50_ms"] <= m["p90_ms"] <= m["p99_ms"]
    assert "onnxruntime" in m["runtime"] and "127.0.0.1" in m["runtime"]
    assert r["predicted"]["total_ms"] > 0  # the prediction is kept beside the measurement
    a = r["accuracy"]
    assert a["n"] == 360
    assert a["device_top1"] == pytest.approx(a["host_top1"])  # same top-1 as validated locally
    assert a["agreement"] == 100.0


def test_missing_trtexec_on_the_device_is_one_line(ssh, onnx_model):
    proc = run_cli(
        "profile", str(onnx_model), "--target", "jetson-orin-nano-8gb", "--device", ssh.dest,
        *ssh.cli_options(), "--trtexec", "/nonexistent/trtexec",
    )  # fmt: skip
    assert_one_line_error(proc, "trtexec not found on the device", "/nonexistent/trtexec")


def test_unreachable_host_is_one_line(onnx_model):
    port = sshd._free_port()  # nothing listens there
    proc = run_cli(
        "profile", str(onnx_model), "--target", "raspberry-pi-5",
        "--device", f"root@127.0.0.1:{port}", "--ssh-option", "ConnectTimeout=5",
    )  # fmt: skip
    assert_one_line_error(proc, "SSH host unreachable", f"127.0.0.1:{port}")


def test_wrong_key_is_an_authentication_error(ssh, tmp_path):
    import subprocess

    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    opts = [f"IdentityFile={other}", f"UserKnownHostsFile={ssh.known_hosts}", "IdentitiesOnly=yes"]
    with pytest.raises(RemoteError, match="SSH authentication failed"):
        RemoteRunner(ssh.dest, opts).run(["true"])


def test_unknown_host_key_is_refused(ssh, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    opts = [f"IdentityFile={ssh.key}", f"UserKnownHostsFile={empty}", "IdentitiesOnly=yes",
            "GlobalKnownHostsFile=/dev/null"]  # fmt: skip
    with pytest.raises(RemoteError, match="host key of the device is not trusted"):
        RemoteRunner(ssh.dest, opts).run(["true"])


def test_agent_failure_is_relayed_in_one_line(ssh, tmp_path):
    from edgekd.latency.remote import profile_onnx_remote

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(RemoteError, match="the agent failed on the device"):
        profile_onnx_remote(runner(ssh), bad, iters=2, warmup=0, python=sys.executable)


@pytest.mark.parametrize(
    "spec,ok",
    [("root@10.0.0.5", True), ("jetson", True), ("u@host:2222", True), ("u@h:0", False),
     ("u@h;rm -rf /", False), ("", False), ("u@h:99999", False)],
)  # fmt: skip
def test_destination_parsing(spec, ok):
    if ok:
        assert parse_destination(spec).host
    else:
        with pytest.raises(RemoteError, match="bad device address"):
            parse_destination(spec)


def test_host_key_checking_cannot_be_disabled():
    with pytest.raises(RemoteError, match="cannot be turned off"):
        RemoteRunner("u@h", ["StrictHostKeyChecking=no"])
    with pytest.raises(RemoteError, match="KEY=VALUE"):
        RemoteRunner("u@h", ["-v"])


def test_agent_module_runs_standalone(tmp_path, onnx_model):
    """The agent file alone (copied, no edgekd next to it) profiles a model."""
    import shutil
    import subprocess

    import edgekd.agent

    copy = tmp_path / "edgekd_agent.py"
    shutil.copy(edgekd.agent.__file__, copy)
    proc = subprocess.run(
        [sys.executable, str(copy), "profile", str(onnx_model), "--iters", "5", "--warmup", "1",
         "--json"], capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["iters"] == 5
    assert Path(copy).read_text().count("from edgekd") == 0
