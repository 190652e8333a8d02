"""The compress chain's stages, one module each, in chain order.

Every stage module has the same shape (tests/pipeline/stages/test_contract.py checks it):
`NAME`; `OWNS`, the run-directory folders it writes; `describe(ctx, plan)`, its one-line
progress title; `key(ctx, plan)`, its own settings (the runner adds the hashes of its upstream
outputs); `run(ctx, plan, *upstream) -> Result`; and `Result`, a frozen dataclass with
`outputs()`, `to_record()` and `from_record(info, run)`. No stage imports another.
"""

from edgekd.pipeline.stages import build, distill, export, quantize, search, teacher, validate

STAGES = (search, teacher, distill, quantize, export, build, validate)
OWNED = tuple(dict.fromkeys(name for stage in STAGES for name in stage.OWNS))

__all__ = ["OWNED", "STAGES", *(s.NAME for s in STAGES)]
