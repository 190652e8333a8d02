import onnx

from tests.pipeline.stages.conftest import round_trips


def test_teacher_onnx(tiny, teacher_onnx):
    ctx, _ = tiny
    assert teacher_onnx.path == ctx.run.path("export/teacher.onnx")
    onnx.checker.check_model(str(teacher_onnx.path))
    assert teacher_onnx.opset == 17 and teacher_onnx.kind == "timm"
    assert teacher_onnx.params == sum(p.numel() for p in ctx.inputs.teacher.module.parameters())
    assert teacher_onnx.to_record()["summary"].startswith("timm, ")
    round_trips(teacher_onnx, ctx)
