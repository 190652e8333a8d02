import torch

from tests.pipeline.stages.conftest import round_trips


def test_quant_student(tiny, int8):
    ctx, _ = tiny
    r = int8.record
    assert r["calib_size"] == 32 and r["method"] == "max" and r["quantizers"] > 0
    assert "qat_val_acc" in r and len(r["history"]) == 1  # one QAT epoch ran
    # QAT is kept only when it is at least as good as calibration alone
    assert int8.kept == ("qat" if r["qat_val_acc"] >= r["ptq_val_acc"] else "ptq")
    assert int8.checkpoint == ctx.run.path(r["checkpoint"])
    assert {p.name for p in int8.outputs()} == {"ptq.pt", "qat_best.pt", "qat_last.pt"}
    ck = torch.load(int8.checkpoint, weights_only=True)
    assert set(ck) >= {"model", "extra"}  # weights and the quantizer state
    assert r["sensitivity"] and all(set(s) == {"layer", "kl"} for s in r["sensitivity"])
    round_trips(int8, ctx)
