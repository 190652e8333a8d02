import json

import torch

from tests.pipeline.stages.conftest import round_trips


def test_float_student(tiny, fp32):
    ctx, _ = tiny
    assert fp32.student == "lcnet_050"
    assert fp32.best == ctx.run.path("distill/best.pt")
    history = json.loads(fp32.history_file.read_text())
    assert len(history) == 1 and history == fp32.record["history"]
    ck = torch.load(fp32.best, weights_only=True)
    assert ck["key"] == "distill-key"  # the epoch checkpoints carry the running stage's key
    assert ck["val_acc"] == fp32.best_val_acc == fp32.record["best_val_acc"]
    assert fp32.record["loss"] == "kd" and fp32.record["teacher_cache"] == "memory"
    round_trips(fp32, ctx)
