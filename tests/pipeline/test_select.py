from edgekd.config import Budgets
from edgekd.pipeline.select import select_variant


def v(acc, p90, p50=None):
    return {"accuracy": acc, "latency": {"p50_ms": p50 or p90, "p90_ms": p90, "p99_ms": p90}}


def test_fastest_within_accuracy_budget_wins():
    choice, why = select_variant({"fp32": v(99.0, 0.2), "int8": v(98.5, 0.1)}, 99.5, Budgets())
    assert choice == "int8" and "fastest" in why


def test_slower_int8_loses_and_the_report_says_why():
    int8 = v(98.9, 0.8) | {"float_conv_gemm_left": 54}
    choice, why = select_variant({"fp32": v(99.0, 0.16), "int8": int8}, 99.5, Budgets())
    assert choice == "fp32" and "left 54 Conv/Gemm in float" in why
    int8["float_conv_gemm_left"] = 0
    _, why = select_variant({"fp32": v(99.0, 0.16), "int8": int8}, 99.5, Budgets())
    assert "every Conv/Gemm runs as an integer kernel" in why


def test_faster_variant_over_accuracy_budget_is_rejected():
    choice, why = select_variant({"fp32": v(99.0, 0.2), "int8": v(90.0, 0.1)}, 99.5, Budgets())
    assert choice == "fp32" and "over the accuracy budget: int8" in why


def test_none_within_budget_keeps_most_accurate():
    choice, why = select_variant({"fp32": v(80.0, 0.2), "int8": v(85.0, 0.1)}, 99.5, Budgets())
    assert choice == "int8" and "no variant within" in why


def test_percentile_follows_the_budget():
    vs = {"fp32": v(99, 0.3, p50=0.1), "int8": v(99, 0.2, p50=0.15)}
    assert select_variant(vs, 99, Budgets(percentile=50))[0] == "fp32"
    assert select_variant(vs, 99, Budgets(percentile=90))[0] == "int8"


def test_a_latency_tie_goes_to_the_more_accurate_variant():
    vs = {"fp32": v(99.4, 0.202), "int8": v(98.9, 0.195)}  # 3.5% apart: a tie
    choice, why = select_variant(vs, 100.0, Budgets())
    assert choice == "fp32" and "tie goes to accuracy" in why
    vs["int8"] = v(98.9, 0.15)  # 26% faster: int8 wins
    assert select_variant(vs, 100.0, Budgets())[0] == "int8"
    assert (
        select_variant({"fp32": v(99.4, 0.202), "int8": v(98.9, 0.195)}, 100.0, Budgets(), tie=0.0)[
            0
        ]
        == "int8"
    )


def test_a_variant_that_disagrees_with_its_torch_model_is_not_shipped():
    # issue 25 item 8: a label-free run shipped an INT8 artifact with 21% parity
    fp32 = v(90.0, 0.2) | {"parity": 100.0}
    int8 = v(89.5, 0.1) | {"parity": 21.0}
    assert Budgets().min_parity == 95.0  # a default gate
    choice, why = select_variant({"fp32": fp32, "int8": int8}, 90.0, Budgets())
    assert choice == "fp32" and "left out for parity below --min-parity 95%: int8 21.0%" in why
    choice, _ = select_variant({"fp32": fp32, "int8": int8}, 90.0, Budgets(min_parity=None))
    assert choice == "int8"  # the gate switched off: the fastest ships
    both_low = {"fp32": fp32 | {"parity": 50.0}, "int8": int8}
    choice, _ = select_variant(both_low, 90.0, Budgets())
    assert choice == "int8"  # none passes: selection as before, the parity gate reports it
