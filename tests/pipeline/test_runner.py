"""StageRunner over stage modules: keys from own settings plus upstream output hashes, reuse
on resume, reruns on a change, failed records."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest

from edgekd.pipeline.events import Reporter
from edgekd.pipeline.manifest import Manifest
from edgekd.pipeline.rundir import RunDir
from edgekd.pipeline.runner import StageRunner


@dataclass(frozen=True)
class FileResult:
    NAME: ClassVar[str] = "first"
    path: Path
    n: int

    def outputs(self):
        return [self.path]

    def to_record(self):
        return {"n": self.n, "summary": f"run {self.n}"}

    @classmethod
    def from_record(cls, info, run):
        return cls(run.path("export/a.bin"), info["n"])


def make_stage(name: str, rel: str, calls: list, content=lambda ctx, plan, *up: b"x"):
    """A stage module: writes `rel` with `content(...)`; counts its runs in `calls`."""
    result = type(f"{name}Result", (FileResult,), {"NAME": name})

    def run(ctx, plan, *upstream):
        calls.append((name, ctx.stage_key))
        p = ctx.run.path(rel)
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(content(ctx, plan, *upstream))
        return result(p, len(calls))

    result.from_record = classmethod(lambda cls, info, run: cls(run.path(rel), info["n"]))
    return SimpleNamespace(NAME=name, Result=result, describe=lambda ctx, plan: f"{name} it",
                           key=lambda ctx, plan: {"plan": plan}, run=run,
                           OWNS=(rel.split("/")[0],))  # fmt: skip


@dataclass(frozen=True)
class Ctx:
    """The part of a RunContext the runner and these stages use."""

    run: RunDir
    stage_key: str = ""


@pytest.fixture()
def ctx(tmp_path):
    return Ctx(RunDir(tmp_path))


def test_resume_skips_unchanged_and_reruns_changed(tmp_path, ctx):
    calls = []
    first = make_stage("first", "export/a.bin", calls)
    m = Manifest(tmp_path)
    r = StageRunner(m, Reporter(), resume=False).run(first, ctx, 1)
    assert r.n == 1 and calls[0][1] == m.stages["first"].key  # the stage sees its own key
    again = StageRunner(Manifest.load(tmp_path), Reporter(), resume=True)
    assert again.run(first, ctx, 1).n == 1  # reused: from_record, not run
    assert again.reused == ["first"] and len(calls) == 1
    again.run(first, ctx, 2)  # a changed plan: runs again
    assert len(calls) == 2 and again.ran == ["first"]


def test_a_changed_upstream_output_reruns_the_downstream_stage(tmp_path, ctx):
    calls = []
    first = make_stage("first", "export/a.bin", calls, lambda ctx, plan: bytes([plan]))
    second = make_stage("second", "build/b.bin", calls, lambda ctx, plan, up: up.path.read_bytes())
    runner = StageRunner(Manifest(tmp_path), Reporter(), resume=False)
    up = runner.run(first, ctx, 1)
    runner.run(second, ctx, None, up)
    key = runner.manifest.stages["second"].key
    up_hashes = runner.manifest.stages["second"].inputs["upstream"]
    assert up_hashes == {"first": runner.manifest.stages["first"].outputs}
    # resume with the same upstream: both reused
    r2 = StageRunner(Manifest.load(tmp_path), Reporter(), resume=True)
    r2.run(second, ctx, None, r2.run(first, ctx, 1))
    assert r2.reused == ["first", "second"]
    # first's settings change -> its output changes -> second's key changes and it reruns
    r3 = StageRunner(Manifest.load(tmp_path), Reporter(), resume=True)
    r3.run(second, ctx, None, r3.run(first, ctx, 7))
    assert r3.ran == ["first", "second"] and r3.manifest.stages["second"].key != key
    assert (tmp_path / "build/b.bin").read_bytes() == bytes([7])


def test_tampered_output_is_not_reused(tmp_path, ctx):
    calls = []
    first = make_stage("first", "export/a.bin", calls)
    StageRunner(Manifest(tmp_path), Reporter(), resume=False).run(first, ctx, 0)
    (tmp_path / "export/a.bin").write_bytes(b"flipped")
    StageRunner(Manifest.load(tmp_path), Reporter(), resume=True).run(first, ctx, 0)
    assert len(calls) == 2


def test_failed_stage_is_recorded_failed(tmp_path, ctx):

    def boom(ctx, plan):
        (tmp_path / "distill").mkdir()
        (tmp_path / "distill" / "half.pt").write_bytes(b"half")
        raise RuntimeError("x")

    stage = SimpleNamespace(NAME="s", Result=None, describe=lambda c, p: "s", key=lambda c, p: {},
                            run=boom, OWNS=("distill",))  # fmt: skip
    with pytest.raises(RuntimeError):
        StageRunner(Manifest(tmp_path), Reporter(), resume=False).run(stage, ctx, None)
    rec = Manifest.load(tmp_path).stages["s"]
    assert rec.status == "failed" and rec.written == ["distill/half.pt"]  # --force may clean it


def test_written_lists_the_files_a_stage_created_and_keeps_them_on_rerun(tmp_path, ctx):
    calls = []
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "users.txt").write_text("there before")
    first = make_stage("first", "export/a.bin", calls, lambda ctx, plan: bytes([plan]))
    StageRunner(Manifest(tmp_path), Reporter(), resume=False).run(first, ctx, 1)
    assert Manifest.load(tmp_path).stages["first"].written == ["export/a.bin"]
    StageRunner(Manifest.load(tmp_path), Reporter(), resume=True).run(first, ctx, 2)  # reruns
    assert Manifest.load(tmp_path).stages["first"].written == ["export/a.bin"]
