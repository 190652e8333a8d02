"""Run on a device over SSH: the OpenSSH client as installed (so ~/.ssh/config, keys and the
agent apply), host-key checking on, never a password prompt (BatchMode), every remote argument
shell-quoted.

`RemoteRunner` moves files with `cat` over the same connection (no scp/sftp needed), makes a
work directory under /tmp on the device and removes it afterwards. On top of it:

- `profile_onnx_remote` / `accuracy_remote`: ONNX Runtime on a CPU device through the agent
  (`edgekd/agent.py`, copied over; the device needs python3, numpy and onnxruntime);
- `trtexec_remote`: build and time a TensorRT engine with the device's own `trtexec`, fetch
  the engine, the log and the per-layer profile.

Failures become one `RemoteError` line: unreachable host, authentication, host key, missing
program (trtexec, python3), full disk, timeout.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgekd.errors import RemoteError

DEFAULT_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
_DEST = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<host>[A-Za-z0-9._-]+|\[[0-9a-fA-F:]+\])"
    r"(?::(?P<port>\d{1,5}))?$"
)


@dataclass(frozen=True)
class Destination:
    user: str | None
    host: str
    port: int | None

    @property
    def login(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def __str__(self) -> str:
        return self.login + (f":{self.port}" if self.port else "")


def parse_destination(spec: str) -> Destination:
    """`user@host[:port]` (user optional: ~/.ssh/config decides)."""
    m = _DEST.match(spec or "")
    port = int(m.group("port")) if m and m.group("port") else None
    if not m or (port is not None and not 0 < port < 65536):
        raise RemoteError(
            "bad device address", value=repr(spec), fix="use user@host or user@host:port"
        )
    return Destination(m.group("user"), m.group("host").strip("[]"), port)


def _classify(stderr: str, returncode: int, dest: Destination, program: str) -> RemoteError:
    text = " ".join(stderr.split())
    low = text.lower()
    if returncode == 255 and any(
        s in low
        for s in (
            "connection refused", "could not resolve", "no route to host", "timed out",
            "network is unreachable", "connection closed", "connection reset",
        )
    ):  # fmt: skip
        return RemoteError(
            "SSH host unreachable",
            value=str(dest),
            fix="check the address and port, that sshd runs on the device, and your network "
            f"(ssh said: {text[:160]})",
        )
    if "host key verification failed" in low or "remote host identification" in low:
        return RemoteError(
            "SSH host key of the device is not trusted",
            value=str(dest),
            fix="ssh to the device once to check and accept its key (host-key checking stays on)",
        )
    if "permission denied" in low and returncode == 255:
        return RemoteError(
            "SSH authentication failed",
            value=str(dest),
            fix="load your key into ssh-agent or name it with --ssh-option IdentityFile=PATH; "
            "edgekd never asks for passwords",
        )
    if "no space left on device" in low:
        return RemoteError(
            "the device's disk is full", value=str(dest), fix="free space under /tmp there"
        )
    if returncode == 127 or (program and "no such file or directory" in low and program in text):
        return RemoteError(
            f"{Path(program).name} not found on the device",
            value=program,
            fix="install it there or pass its path (--trtexec PATH / --remote-python PATH)",
        )
    return RemoteError(
        f"command on the device failed (exit {returncode})",
        value=program,
        fix=text[-300:] or "rerun with --debug",
    )


class RemoteRunner:
    """Commands and files on one device over SSH (see the module docstring)."""

    def __init__(
        self,
        dest: str | Destination,
        ssh_options: Sequence[str] = (),
        *,
        connect_timeout: int = 10,
        timeout: float = 600,
    ) -> None:
        self.dest = dest if isinstance(dest, Destination) else parse_destination(dest)
        self.timeout = timeout
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout}"]
        for o in ssh_options:
            if o.startswith("-"):
                raise RemoteError(
                    "--ssh-option takes KEY=VALUE (an ssh -o option)",
                    value=o,
                    fix="e.g. --ssh-option IdentityFile=~/.ssh/jetson",
                )
            key = o.partition("=")[0].strip().lower()
            if key == "stricthostkeychecking" and o.partition("=")[2].strip().lower() == "no":
                raise RemoteError(
                    "host-key checking cannot be turned off",
                    value=o,
                    fix="accept the device's key once with ssh (or use accept-new)",
                )
            opts += ["-o", o]
        if self.dest.port:
            opts += ["-p", str(self.dest.port)]
        self.base = ["ssh", *opts]

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = True,
        program: str | None = None,
    ) -> subprocess.CompletedProcess:
        """Run `argv` on the device (each argument shell-quoted); stdout/stderr as bytes.
        `program` names what errors are about (default: argv[0])."""
        command = " ".join(shlex.quote(str(a)) for a in argv)
        try:
            proc = subprocess.run(
                [*self.base, "--", self.dest.login, command],
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout or self.timeout,
            )
        except FileNotFoundError:
            raise RemoteError(
                "the ssh client is not installed here", fix="install OpenSSH's client"
            ) from None
        except subprocess.TimeoutExpired:
            raise RemoteError(
                f"command on the device timed out after {timeout or self.timeout:.0f} s",
                value=str(argv[0]),
                fix="raise the timeout or check the device",
            ) from None
        if check and proc.returncode != 0:
            raise _classify(
                proc.stderr.decode(errors="replace"),
                proc.returncode,
                self.dest,
                program or str(argv[0]),
            )
        return proc

    def put(self, local: Path, remote: str) -> None:
        self.run(["sh", "-c", 'cat > "$1"', "sh", remote], stdin=Path(local).read_bytes())

    def put_bytes(self, data: bytes, remote: str) -> None:
        self.run(["sh", "-c", 'cat > "$1"', "sh", remote], stdin=data)

    def get(self, remote: str, local: Path) -> Path:
        from edgekd._io import atomic_path

        data = self.run(["cat", remote]).stdout
        with atomic_path(local) as tmp:
            Path(tmp).write_bytes(data)
        return local

    @contextmanager
    def workdir(self):
        """A fresh directory under /tmp on the device, removed afterwards."""
        path = self.run(["mktemp", "-d", "/tmp/edgekd.XXXXXX"]).stdout.decode().strip()
        if not path.startswith("/tmp/edgekd."):
            raise RemoteError("could not create a work directory on the device", value=path)
        try:
            yield path
        finally:
            try:
                self.run(["rm", "-rf", path], timeout=60)
            except RemoteError:
                pass  # the device went away; nothing more to clean


def _agent_json(runner: RemoteRunner, python: str, argv: list[str]) -> dict:
    import json

    proc = runner.run([python, *argv], check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        line = err[-1] if err else ""
        if proc.returncode == 1 and line.startswith("error: "):
            raise RemoteError("the agent failed on the device", value=line.removeprefix("error: "))
        raise _classify("\n".join(err), proc.returncode, runner.dest, python)
    try:
        return json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RemoteError(
            "the agent's answer is not JSON", value=proc.stdout[:120].decode(errors="replace")
        ) from None


def _ship_agent(runner: RemoteRunner, workdir: str) -> str:
    import edgekd.agent

    agent = f"{workdir}/edgekd_agent.py"
    runner.put(Path(edgekd.agent.__file__), agent)
    return agent


def profile_onnx_remote(
    runner: RemoteRunner,
    onnx: Path,
    *,
    threads: int = 1,
    warmup: int = 50,
    iters: int = 300,
    python: str = "python3",
) -> dict:
    """Latency of `onnx` measured on the device with ONNX Runtime (through the agent)."""
    with runner.workdir() as wd:
        agent = _ship_agent(runner, wd)
        model = f"{wd}/model.onnx"
        runner.put(onnx, model)
        out = _agent_json(
            runner,
            python,
            [agent, "profile", model, "--threads", str(threads), "--warmup", str(warmup),
             "--iters", str(iters), "--json"],
        )  # fmt: skip
    out["measured"] = True
    out["runtime"] = f"{out['runtime']} on {runner.dest}"
    return out


def accuracy_remote(
    runner: RemoteRunner,
    model: Path,
    x,
    y,
    *,
    threads: int = 1,
    python: str = "python3",
) -> dict:
    """Top-1 and predictions of `model` (ONNX, or an engine on a Jetson) on the device for the
    images `x` [N,C,H,W] and labels `y` [N], shipped as .npy files."""
    import io

    import numpy as np

    def npy(a) -> bytes:
        buf = io.BytesIO()
        np.save(buf, np.asarray(a))
        return buf.getvalue()

    with runner.workdir() as wd:
        agent = _ship_agent(runner, wd)
        remote_model = f"{wd}/{Path(model).name}"
        runner.put(model, remote_model)
        runner.put_bytes(npy(np.asarray(x, dtype=np.float32)), f"{wd}/x.npy")
        runner.put_bytes(npy(np.asarray(y, dtype=np.int64)), f"{wd}/y.npy")
        return _agent_json(
            runner,
            python,
            [agent, "accuracy", remote_model, f"{wd}/x.npy", f"{wd}/y.npy",
             "--threads", str(threads), "--json"],
        )  # fmt: skip


def check_program(runner: RemoteRunner, program: str) -> None:
    """Fail with one line when `program` cannot be run on the device."""
    runner.run(["sh", "-c", 'command -v "$1" >/dev/null || { echo "$1: No such file or '
                'directory" >&2; exit 127; }', "sh", program], program=program)  # fmt: skip


@dataclass
class RemoteBuild:
    engine: Path
    log: Path
    layer_profile: Path | None
    result: object  # TrtexecResult


def trtexec_remote(
    runner: RemoteRunner,
    onnx: Path,
    argv_after_onnx: list[str],
    out_dir: Path,
    *,
    stem: str,
    trtexec: str = DEFAULT_TRTEXEC,
) -> RemoteBuild:
    """Build and time an engine with the device's trtexec; fetch engine, log and profile."""
    from edgekd.latency.trtexec import parse_trtexec_log

    check_program(runner, trtexec)
    out_dir.mkdir(parents=True, exist_ok=True)
    with runner.workdir() as wd:
        runner.put(onnx, f"{wd}/model.onnx")
        argv = [
            trtexec,
            f"--onnx={wd}/model.onnx",
            f"--saveEngine={wd}/model.engine",
            f"--exportProfile={wd}/profile.json",
            f"--timingCacheFile={wd}/timing.cache",
            *argv_after_onnx,
        ]
        # 2>&1 on the device: trtexec prints [E]/[W] on stderr and [I] on stdout, and the log
        # keeps them in the order they were printed
        proc = runner.run(["sh", "-c", shlex.join(argv) + " 2>&1"], check=False,
                          timeout=max(runner.timeout, 1800), program=trtexec)  # fmt: skip
        log_text = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        log = out_dir / f"{stem}.trtexec.log"
        log.write_text(log_text)
        if "no space left on device" in log_text.lower():
            raise _classify(log_text, proc.returncode, runner.dest, trtexec)
        result = parse_trtexec_log(log_text)
        if proc.returncode != 0 or not result.passed:  # [E] lines of a PASSED run are fine
            first = result.errors[0] if result.errors else f"exit {proc.returncode}"
            raise RemoteError("trtexec failed on the device", value=first, fix=f"see {log}")
        engine = runner.get(f"{wd}/model.engine", out_dir / f"{stem}.engine")
        try:
            prof = runner.get(f"{wd}/profile.json", out_dir / f"{stem}.profile.json")
        except RemoteError:
            prof = None
    return RemoteBuild(engine, log, prof, result)
