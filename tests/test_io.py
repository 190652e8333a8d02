import hashlib
import os

import pytest

from edgekd._io import atomic_path, sha256_file, write_json, write_text


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("disk full")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_old_file_until_success(tmp_path):
    target = write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError
    assert target.read_text() == "old"


def test_written_files_get_the_usual_mode(tmp_path):
    p = write_json(tmp_path / "x.json", {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask


def test_sha256_matches_hashlib(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"edgekd" * 1000)
    assert sha256_file(p) == hashlib.sha256(b"edgekd" * 1000).hexdigest()


def test_write_json_is_strict_json_without_nan(tmp_path):
    import json
    import math

    from edgekd._io import write_json

    p = write_json(tmp_path / "r.json", {"p90": math.nan, "rows": [1.0, math.inf, -math.inf]})

    def refuse(name):
        raise ValueError(name)

    assert json.loads(p.read_text(), parse_constant=refuse) == {
        "p90": None,
        "rows": [1.0, None, None],
    }
