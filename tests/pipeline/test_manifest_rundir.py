import pytest

from edgekd.errors import RunDirError
from edgekd.pipeline.rundir import RunDir


def test_rundir_refuses_to_clobber_and_force_cleans_only_its_files(tmp_path):
    run = RunDir(tmp_path / "r")
    run.prepare(resume=False, force=False)
    (run / "manifest.json").write_text("{}")
    (run / "notes.txt").write_text("user file")
    with pytest.raises(RunDirError, match="already holds a run"):
        run.prepare(resume=False, force=False)
    run.prepare(resume=False, force=True)
    assert not (run / "manifest.json").exists()
    assert (run / "notes.txt").read_text() == "user file"


def test_unwritable_out(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(RunDirError, match="cannot write the run directory"):
        RunDir(f / "sub").prepare(resume=False, force=False)


def test_force_cleans_the_folders_the_stages_own(tmp_path):
    from edgekd.pipeline.stages import OWNED

    assert set(OWNED) == {"search", "distill", "export", "build", "validate", "device"}
    run = RunDir(tmp_path / "r", OWNED)
    run.prepare(resume=False, force=False)
    (run.path("device")).mkdir()
    (run.path("device/student-int8.engine")).write_bytes(b"old engine")
    (run.path("manifest.json")).write_text("{}")
    run.prepare(resume=False, force=True)
    assert not run.path("device").exists() and not run.path("manifest.json").exists()
    assert run.rel(run.path("build/x.onnx")) == "build/x.onnx"
