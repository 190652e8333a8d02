"""Atomic file writes and hashing: every file edgekd writes appears whole or not at all."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_UMASK = _umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; artifacts get the usual mode
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def finite_json(obj: Any) -> Any:
    """obj with every NaN or infinite float replaced by None, so that it is strict JSON
    (RFC 8259 has no NaN; Python's json writes one that other readers refuse)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Strict JSON (no NaN or Infinity: those become null), written atomically."""
    text = json.dumps(finite_json(obj), indent=2, sort_keys=False, default=str, allow_nan=False)
    return write_text(path, text + "\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-able object, stable across runs (keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def read_yaml_mapping(path: str | os.PathLike, error: type, what: str) -> dict:
    """A YAML file that must hold a mapping with string keys, read with the safe loader (no
    object tags). Failures raise `error` (an EdgekdError subclass) with one line naming `what`."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as e:
        raise error(f"cannot read {what}", value=str(path), fix=e.strerror or str(e)) from None
    except yaml.YAMLError as e:
        raise error(
            f"{what} is not valid YAML", value=str(path), fix=str(e).splitlines()[0]
        ) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise error(f"{what} must be a YAML mapping of names to values", value=str(path))
    return raw
