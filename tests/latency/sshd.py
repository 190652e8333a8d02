"""A throwaway OpenSSH server on 127.0.0.1 for the remote tests: its own host key, one client
key, a known_hosts file holding the host key (so host-key checking stays on), the current user.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


@dataclass
class LoopbackSSH:
    port: int
    user: str
    key: Path
    known_hosts: Path

    @property
    def dest(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    @property
    def options(self) -> list[str]:
        return [
            f"IdentityFile={self.key}",
            f"UserKnownHostsFile={self.known_hosts}",
            "IdentitiesOnly=yes",
            "GlobalKnownHostsFile=/dev/null",
        ]

    def cli_options(self) -> list[str]:
        out = []
        for o in self.options:
            out += ["--ssh-option", o]
        return out


def available() -> str | None:
    """None when a loopback sshd can run here, else the reason it cannot."""
    if not Path(SSHD).exists():
        return "no sshd (Debian's openssh-server; `make test` installs it where apt works)"
    if not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        return "no OpenSSH client"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp: Path) -> tuple[LoopbackSSH, subprocess.Popen]:
    tmp.mkdir(parents=True, exist_ok=True)
    host_key, key = tmp / "host_ed25519", tmp / "client_ed25519"
    for k in (host_key, key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)], check=True)
    (tmp / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    port = _free_port()
    known = tmp / "known_hosts"
    host_pub = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    known.write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    cfg = tmp / "sshd_config"
    cfg.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {host_key}",
                f"PidFile {tmp / 'sshd.pid'}",
                f"AuthorizedKeysFile {tmp / 'authorized_keys'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "PermitRootLogin prohibit-password",
                "StrictModes no",
                "UsePAM no",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    for k in (key, host_key):
        k.chmod(0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {proc.stderr.read().decode()[:400]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    return LoopbackSSH(port, getpass.getuser(), key, known), proc
