from edgekd._io import sha256_file
from tests.pipeline.stages.conftest import round_trips


def test_built(tiny, built):
    ctx, _ = tiny
    assert set(built.artifacts) == {"fp32", "int8"} and built.script is None
    for p, a in built.artifacts.items():
        assert a.path == ctx.run.path(f"build/student-{p}.ort.onnx")
        assert a.format == "ort.onnx" and a.sha256 == sha256_file(a.path)
    rec = built.to_record()["artifacts"]
    assert rec["int8"]["path"] == "build/student-int8.ort.onnx"
    round_trips(built, ctx)
