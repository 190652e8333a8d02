"""--out and --force never destroy what the user did not hand over (issue 24, items 2 and 3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli_runner import invoke, one_line


@pytest.fixture(scope="module")
def random_teacher(tmp_path_factory) -> Path:
    """A randomly initialised resnet10t saved as an edgekd checkpoint (loads in a second)."""
    from edgekd.models import create_timm, save_checkpoint

    path = tmp_path_factory.mktemp("t") / "teacher.pt"
    return save_checkpoint(path, create_timm("resnet10t", 10), "resnet10t", 10, (3, 32, 32))


@pytest.mark.parametrize("out", ["/", "/.", "/usr/.."])
def test_the_filesystem_root_is_refused(random_teacher, out):
    before = set(Path("/").iterdir())
    one_line(invoke("compress", str(random_teacher), "--out", out, "--force"),
             "refusing to use this folder", "--out a folder of its own")  # fmt: skip
    assert set(Path("/").iterdir()) == before  # no /distill, /export, ...


def test_the_home_directory_is_refused(random_teacher, tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "distill").mkdir(parents=True)
    (home / "distill" / "notes.txt").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    for out in (str(home), "~"):
        one_line(invoke("compress", str(random_teacher), "--out", out, "--force"),
                 "refusing to use this folder")  # fmt: skip
    assert (home / "distill" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in home.iterdir()) == ["distill"]


def test_force_never_deletes_the_teacher_it_was_given(random_teacher, tmp_path):
    run = tmp_path / "run"
    (run / "distill").mkdir(parents=True)
    teacher = run / "distill" / "teacher.pt"  # re-distilling from an earlier run's folder
    teacher.write_bytes(random_teacher.read_bytes())
    line = one_line(invoke("compress", str(teacher), "--out", str(run), "--force"),
                    "--force would delete an input", "teacher.pt")  # fmt: skip
    assert "move it out of" in line
    assert teacher.read_bytes() == random_teacher.read_bytes()


def test_force_never_deletes_the_data_folder_it_was_given(random_teacher, tmp_path):
    from tests.data.test_folder import make_folder

    run = tmp_path / "run"
    classes = tuple("abcdefghij")  # the teacher's 10 classes
    data = make_folder(run / "validate" / "imgs", classes=classes, per_class=1, size=8)
    one_line(invoke("compress", str(random_teacher), "--data", str(data), "--out", str(run),
                    "--force"), "--force would delete an input", "imgs")  # fmt: skip
    assert len(list(data.rglob("*.png"))) == 20
