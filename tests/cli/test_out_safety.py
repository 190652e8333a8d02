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


def _earlier_run(run: Path, *written: str) -> None:
    """A run directory whose manifest says an earlier run wrote these files."""
    import json

    for rel in written:
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
    rec = {"name": "distill", "key": "k", "status": "finished", "outputs": {}, "written": written}
    (run / "manifest.json").write_text(json.dumps({"manifest_version": 1, "stages": [rec]}))


def test_force_never_deletes_the_teacher_it_was_given(random_teacher, tmp_path):
    run = tmp_path / "run"
    _earlier_run(run, "distill/student.pt")
    teacher = run / "distill" / "student.pt"  # re-distilling from an earlier run's student
    teacher.write_bytes(random_teacher.read_bytes())
    line = one_line(invoke("compress", str(teacher), "--out", str(run), "--force"),
                    "--force would delete an input", "student.pt")  # fmt: skip
    assert "move it out of" in line
    assert teacher.read_bytes() == random_teacher.read_bytes()


def test_force_never_deletes_the_data_folder_it_was_given(random_teacher, tmp_path):
    from tests.data.test_folder import make_folder

    run = tmp_path / "run"
    classes = tuple("abcdefghij")  # the teacher's 10 classes
    data = make_folder(run / "validate" / "imgs", classes=classes, per_class=1, size=8)
    listed = sorted(str(p.relative_to(run)) for p in data.rglob("*.png"))
    _earlier_run(run, listed[0])
    one_line(invoke("compress", str(random_teacher), "--data", str(data), "--out", str(run),
                    "--force"), "--force would delete an input", "imgs")  # fmt: skip
    assert len(list(data.rglob("*.png"))) == 20


def test_a_folder_that_is_not_a_run_is_refused_even_with_force(random_teacher, tmp_path):
    out = tmp_path / "project"
    (out / "distill").mkdir(parents=True)
    (out / "distill" / "teacher.pt").write_bytes(random_teacher.read_bytes())
    (out / "README.md").write_text("mine")
    for extra in ((), ("--force",)):
        one_line(invoke("compress", str(out / "distill" / "teacher.pt"), "--out", str(out),
                        *extra), "not an edgekd run", "--out a new folder")  # fmt: skip
    assert (out / "README.md").read_text() == "mine"
    assert (out / "distill" / "teacher.pt").read_bytes() == random_teacher.read_bytes()


def test_an_out_that_holds_a_run_is_refused_before_torch_is_imported(tmp_path):
    """issue 25 item 10: the refusal used to come after minutes of imports and loading."""
    import subprocess
    import sys

    run = tmp_path / "run"
    run.mkdir()
    _earlier_run(run)
    code = ("import sys\nfrom edgekd.cli.app import app\ntry:\n    app()\nexcept SystemExit as e:\n"
            "    print('exit', e.code, 'torch' in sys.modules)")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, "compress", "timm:resnet18", "--out",
                           str(run)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "already holds a run" in proc.stderr
    assert proc.stdout.strip() == "exit 1 False", (proc.stdout, proc.stderr)
