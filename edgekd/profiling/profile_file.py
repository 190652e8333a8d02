"""Edit a target profile YAML in place: replace or add top-level keys and `sources` entries,
leaving every other line (and its layout) as it was, and refuse a result that does not load."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from edgekd._io import write_text

_TOP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):")


def _blocks(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Top-level key -> (first line, one past its last line)."""
    starts = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _TOP.match(line))]
    ends = [i for i, _ in starts[1:]] + [len(lines)]
    return {key: (i, end) for (i, key), end in zip(starts, ends, strict=True)}


def _scalar(value: object) -> str:
    return json.dumps(value)  # a JSON scalar is a YAML scalar (strings double-quoted)


def _dump(key: str, value: object, indent: str = "") -> list[str]:
    """`key: value` in the profiles' layout: a mapping one entry per line, a mapping inside
    it on one line ({a: 1, b: 2}), lists and scalars inline."""
    if not isinstance(value, dict):
        inline = "[" + ", ".join(map(_scalar, value)) + "]" if isinstance(value, list) else None
        return [f"{indent}{key}: {inline or _scalar(value)}"]
    if indent:
        body = ", ".join(f"{k}: {_scalar(v)}" for k, v in value.items())
        return [f"{indent}{key}: {{{body}}}"]
    return [f"{key}:"] + [ln for k, v in value.items() for ln in _dump(k, v, "  ")]


def set_profile_keys(path: str | Path, keys: dict, sources: dict[str, str] | None = None) -> None:
    """Set each of `keys` (replacing its block, or adding it before `aliases`) and each
    `sources` entry (replacing its line, or adding it at the end of `sources`)."""
    from edgekd.targets import TargetProfile

    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    for key, value in keys.items():
        blocks = _blocks(lines)
        new = _dump(key, value)
        if key in blocks:
            a, b = blocks[key]
            lines[a:b] = new
        else:
            at = blocks.get("aliases", blocks.get("sources", (len(lines), 0)))[0]
            lines[at:at] = new
    for name, text in (sources or {}).items():
        a, b = _blocks(lines)["sources"]
        entry = _dump(name, text, "  ")[0]
        hit = next((i for i in range(a + 1, b) if lines[i].startswith(f"  {name}:")), None)
        if hit is None:
            lines.insert(b, entry)
        else:
            lines[hit] = entry
    out = "\n".join(lines) + "\n"
    TargetProfile(**yaml.safe_load(out))  # a profile that would no longer load is not written
    write_text(path, out)
