"""Choosing the artifact: precision is decided by measured numbers, not assumed."""

from __future__ import annotations

from edgekd.config import Budgets

# Two latencies closer than this (relative) are a tie: timings on a shared CPU move by a few
# percent between runs, and a tie should not trade accuracy away.
LATENCY_TIE = 0.05


def select_variant(
    variants: dict[str, dict],
    teacher_accuracy: float,
    budgets: Budgets,
    tie: float = LATENCY_TIE,
) -> tuple[str, str]:
    """The precision to ship and why.

    Among variants within the accuracy budget, the one with the lowest latency at the budget's
    percentile wins, except that a more accurate variant within `tie` (relative) of the fastest
    wins the tie; when none is within the budget, the most accurate one is kept (and the report
    fails the accuracy gate).
    """
    pct = budgets.percentile
    key = f"p{pct}_ms"

    def lat(p: str) -> float:
        return variants[p]["latency"][key]

    drop_ok = [
        p
        for p, v in variants.items()
        if budgets.max_accuracy_drop is None
        or teacher_accuracy - v["accuracy"] <= budgets.max_accuracy_drop
    ]
    # an artifact that disagrees with its own torch model is not shipped while another passes
    # (issue 25 item 8: a 21%-agreement INT8 artifact shipped)
    low = {p: variants[p]["parity"] for p in drop_ok
           if budgets.min_parity is not None and variants[p].get("parity") is not None
           and variants[p]["parity"] < budgets.min_parity}  # fmt: skip
    if low and len(low) < len(drop_ok):
        drop_ok = [p for p in drop_ok if p not in low]
    else:
        low = {}
    timings = ", ".join(f"{p} {lat(p):.3f} ms" for p in sorted(variants, key=lat))
    if drop_ok:
        fastest = min(drop_ok, key=lat)
        tied = [p for p in drop_ok if lat(p) <= lat(fastest) * (1 + tie)]
        choice = max(tied, key=lambda p: (variants[p]["accuracy"], -lat(p)))
        reason = f"fastest within the accuracy budget at p{pct} ({timings})"
        if choice != fastest:
            reason = (
                f"{choice} is within {tie:.0%} of the fastest ({fastest}) at p{pct} and more "
                f"accurate: a tie goes to accuracy ({timings})"
            )
        slower = [p for p in drop_ok if p != choice]
        if choice in ("fp32", "fp16") and "int8" in slower:
            left = variants["int8"].get("float_conv_gemm_left")
            if left:
                reason += (
                    f"; INT8 was slower here: the runtime left {left} Conv/Gemm in float "
                    "around unfused Q/DQ nodes, so the float artifact ships"
                )
            elif left == 0:
                reason += (
                    "; INT8 was slower here although every Conv/Gemm runs as an integer kernel: "
                    "at this size the quantize/dequantize steps and per-kernel overhead outweigh "
                    "the cheaper arithmetic, so the float artifact ships"
                )
            else:
                reason += "; INT8 was slower on this target, so the float artifact ships"
        rejected = sorted(set(variants) - set(drop_ok) - set(low))
        if rejected:
            reason += f"; over the accuracy budget: {', '.join(rejected)}"
        if low:
            reason += "; left out for parity below --min-parity {:.0f}%: {}".format(
                budgets.min_parity, ", ".join(f"{p} {a:.1f}%" for p, a in sorted(low.items()))
            )
        return choice, reason
    choice = max(variants, key=lambda p: variants[p]["accuracy"])
    return choice, f"no variant within the accuracy budget; kept the most accurate ({timings})"
