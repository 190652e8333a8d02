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


def _manifest(run, **written):
    import json

    stages = [{"name": k, "key": "k", "status": "finished", "outputs": {}, "written": v}
              for k, v in written.items()]  # fmt: skip
    (run.path("manifest.json")).write_text(json.dumps({"manifest_version": 1, "stages": stages}))


def test_force_deletes_only_what_the_manifest_lists(tmp_path):
    from edgekd.pipeline.rundir import STAGE_FOLDERS
    from edgekd.pipeline.stages import OWNED

    assert set(OWNED) == {"search", "distill", "export", "build", "validate", "device"}
    assert set(STAGE_FOLDERS) == set(OWNED)  # the CLI's precheck, before the stages import
    run = RunDir(tmp_path / "r", OWNED)
    run.prepare(resume=False, force=False)
    (run.path("device")).mkdir()
    (run.path("device/student-int8.engine")).write_bytes(b"old engine")
    (run.path("distill/mine.txt")).write_text("the user's")
    _manifest(run, validate=["device/student-int8.engine", "../outside.txt", "/etc/hostname"])
    (tmp_path / "outside.txt").write_text("outside")
    run.prepare(resume=False, force=True)
    assert not run.path("device").exists() and not run.path("manifest.json").exists()
    assert run.path("distill/mine.txt").read_text() == "the user's"  # not listed: kept
    assert (tmp_path / "outside.txt").read_text() == "outside"  # a manifest cannot reach out
    assert run.rel(run.path("build/x.onnx")) == "build/x.onnx"


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "thesis.tex").write_text("mine")
    for force in (False, True):
        with pytest.raises(RunDirError, match="not an edgekd run"):
            RunDir(tmp_path / "r").prepare(resume=False, force=force)
    assert (tmp_path / "r" / "thesis.tex").read_text() == "mine"
    # what a run that died before its manifest leaves is not foreign
    RunDir(tmp_path / "s").prepare(resume=False, force=False)
    (tmp_path / "s" / "edgekd.log").write_text("started")
    RunDir(tmp_path / "s").prepare(resume=False, force=False)


def test_a_symlinked_stage_folder_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    run = RunDir(tmp_path / "r", ("distill",))
    run.prepare(resume=False, force=False)
    run.release()
    run.path("distill").rmdir()
    run.path("distill").symlink_to(elsewhere)
    for resume, force in ((True, False), (False, True)):
        with pytest.raises(RunDirError, match="symlink where edgekd writes"):
            run.prepare(resume=resume, force=force)
    assert (elsewhere / "keep.txt").read_text() == "keep"


def test_a_second_process_on_the_run_directory_is_refused(tmp_path):
    import subprocess
    import sys

    run = RunDir(tmp_path / "r")
    run.prepare(resume=False, force=False)  # this process holds the lock
    code = (
        "import sys; from edgekd.pipeline.rundir import RunDir; from edgekd.errors import "
        "RunDirError\ntry:\n RunDir(sys.argv[1]).prepare(resume=True, force=False)\n"
        "except RunDirError as e:\n print(e); sys.exit(1)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(run.root)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1 and "another edgekd run is using" in proc.stdout, proc
    run.release()
    proc = subprocess.run([sys.executable, "-c", code, str(run.root)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc


def test_a_truncated_manifest_is_one_line(tmp_path):
    from edgekd.pipeline.manifest import Manifest

    run = RunDir(tmp_path / "r")
    run.prepare(resume=False, force=False)
    (run / "manifest.json").write_text('{"manifest_version": 1, "stag')
    with pytest.raises(RunDirError, match="manifest.json is unreadable.*--force"):
        Manifest.load(run.root)
    run.prepare(resume=False, force=True)  # --force still starts over
    assert not (run / "manifest.json").exists()
