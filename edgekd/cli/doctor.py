"""`edgekd doctor --device user@host --target T`: is the device ready for a run?"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from edgekd.cli._common import Debug, RemotePython, SshOptions, Trtexec, fail, guarded
from edgekd.latency.remote import DEFAULT_TRTEXEC


def doctor_command(
    device: Annotated[str, typer.Option(help="The device over SSH: user@host[:port].")],
    target: Annotated[str, typer.Option(help="Target profile name or YAML path.")] = "jetson",
    ssh_option: SshOptions = None,
    trtexec: Trtexec = DEFAULT_TRTEXEC,
    remote_python: RemotePython = "python3",
    timeout: Annotated[float, typer.Option(help="Seconds per remote command.")] = 600,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: Debug = False,
) -> None:
    """Check a device before a run: the versions there (Python, numpy, ONNX Runtime,
    TensorRT, cuda-python, CUDA, L4T, power mode, clocks), then build and time a tiny engine
    with its trtexec (TensorRT targets) or a tiny ONNX with ONNX Runtime (CPU targets). Exit 1
    when a check fails."""

    def body() -> None:
        from edgekd.profiling.doctor import doctor

        say = None if as_json else lambda m: (sys.stdout.write(f"..    {m}\n"), sys.stdout.flush())
        rep = doctor(target, device, ssh_options=tuple(ssh_option or ()), trtexec=trtexec,
                     python=remote_python, timeout=timeout, progress=say)  # fmt: skip
        if as_json:
            sys.stdout.write(json.dumps(rep.to_dict(), indent=2) + "\n")
        else:
            for c in rep.checks:
                sys.stdout.write(f"{c.status:4s}  {c.name:18s} {c.detail}\n")
            for p in rep.versions.get("problems", []):
                sys.stdout.write(f"note  {'device says':18s} {p}\n")
        if not rep.ok:
            bad = next(c for c in rep.checks if c.status == "FAIL")
            raise fail(f"{rep.device} is not ready for {rep.target}: {bad.name}: {bad.detail}")
        if not as_json:
            sys.stdout.write(f"{rep.device} is ready for {rep.target}\n")

    guarded(body, debug=debug)
