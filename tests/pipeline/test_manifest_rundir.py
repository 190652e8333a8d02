import pytest

from edgekd.errors import RunDirError
from edgekd.pipeline.events import Reporter
from edgekd.pipeline.manifest import Manifest
from edgekd.pipeline.rundir import RunDir
from edgekd.pipeline.stages import StageRunner


def _stage(run_dir, calls, content=b"x"):
    def fn(key):
        calls.append(key)
        p = run_dir / "export" / "a.bin"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(content)
        return [p], {"summary": "ok", "n": len(calls)}

    return fn


def test_resume_skips_unchanged_and_reruns_changed(tmp_path):
    calls = []
    m = Manifest(tmp_path)
    StageRunner(m, Reporter(), resume=False).run("s", "d", {"a": 1}, _stage(tmp_path, calls))
    m2 = Manifest.load(tmp_path)
    r = StageRunner(m2, Reporter(), resume=True)
    assert r.run("s", "d", {"a": 1}, _stage(tmp_path, calls))["n"] == 1
    assert r.reused == ["s"] and len(calls) == 1
    r.run("s", "d", {"a": 2}, _stage(tmp_path, calls))  # changed input -> runs again
    assert len(calls) == 2


def test_tampered_output_is_not_reused(tmp_path):
    calls = []
    m = Manifest(tmp_path)
    StageRunner(m, Reporter(), resume=False).run("s", "d", {}, _stage(tmp_path, calls))
    (tmp_path / "export/a.bin").write_bytes(b"flipped")
    StageRunner(Manifest.load(tmp_path), Reporter(), resume=True).run(
        "s", "d", {}, _stage(tmp_path, calls)
    )
    assert len(calls) == 2


def test_failed_stage_is_recorded_failed(tmp_path):
    m = Manifest(tmp_path)

    def boom(key):
        raise RuntimeError("x")

    with pytest.raises(RuntimeError):
        StageRunner(m, Reporter(), resume=False).run("s", "d", {}, boom)
    assert Manifest.load(tmp_path).stages["s"].status == "failed"


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
