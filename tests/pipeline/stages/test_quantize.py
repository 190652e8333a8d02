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


def test_no_layer_goes_to_float_when_the_float_student_misses_the_goal(tiny, fp32):
    # the goal is the teacher's accuracy less the budget: a float student under it cannot be
    # rescued by float layers, so the search is skipped and the line says why
    import dataclasses

    from edgekd.pipeline.stages import quantize

    ctx, plans = tiny
    plan = dataclasses.replace(plans.quant, max_accuracy_drop=0.0)
    calib = ctx.inputs.data.calibration_subset(32, 0)
    student, _ = quantize._calibrated(ctx, plan, fp32, calib)
    info: dict = {"kept": "ptq"}
    n = len(ctx.reporter.lines)
    got = quantize._mixed(ctx, plan, student, calib, -1.0, info, [], float_acc=-0.5)
    assert got == -1.0 and info["mixed_skipped"] == "float student under goal"
    said = ctx.reporter.lines[n:]
    assert any("no layer kept in float can reach it" in m for m in said), said
    assert not any(m.startswith("mixed precision: val") for m in said)
