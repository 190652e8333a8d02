import json

from edgekd._io import sha256_file
from tests.pipeline.stages.conftest import round_trips


def test_validated(tiny, checked):
    ctx, _ = tiny
    m = checked.metrics
    assert checked.artifact == ctx.run.path("build/model.ort.onnx")
    assert m["selected"] == checked.selected in ("fp32", "int8")
    assert m["artifact"]["sha256"] == sha256_file(checked.artifact)
    assert m["val_samples"] == len(ctx.inputs.data.val)
    assert m["latency_source"] == "measured on this machine (host)"
    for v in m["student"].values():
        lat = v["latency"]
        assert lat["measured"] and lat["iters"] == 10 and lat["warmup"] == 1
    stored = json.loads(checked.metrics_file.read_text())
    assert stored == {k: v for k, v in m.items() if k != "summary"}
    f = checked.figures
    assert f["teacher_gflops"] > f["artifact_gflops"] > 0 and f["layers"]["rows"]
    round_trips(checked, ctx)
