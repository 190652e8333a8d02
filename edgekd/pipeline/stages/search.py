"""The `search` stage (--student auto|search): the student search of edgekd.search, whose
pick the distill stage trains. A resumed run keeps its pick.

auto: every candidate of the search space under `size_cap`, the nominees of the top
`AUTO_FEW_SHOT_K` by DisWOT and by params distilled for --few-shot-epochs; when no candidate
meets the latency budget the fastest is kept and the report shows the budget missed.
search: the whole space, ranked by DisWOT, few-shot only with --few-shot-k; no candidate
within the budget is an error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edgekd.models import count_params
from edgekd.models.evaluate import chance_level
from edgekd.pipeline.context import RunContext
from edgekd.pipeline.plans import SearchPlan
from edgekd.pipeline.rundir import RunDir
from edgekd.search import space
from edgekd.search.search import (
    AUTO_FEW_SHOT_K,
    Candidate,
    chosen,
    diswot_source,
    search,
    size_cap,
    undecided,
    write_results,
)

NAME = "search"
OWNS = ("search",)
CANDIDATES = "search/candidates.json"


@dataclass(frozen=True)
class SearchPick:
    NAME: ClassVar[str] = NAME
    name: str
    latency_ms: float
    record: dict  # the pick's Candidate fields, plus mode, how, candidates_file, few_shot
    candidates: Path
    pareto: Path

    def outputs(self) -> list[Path]:
        return [self.candidates, self.pareto]

    def to_record(self) -> dict:
        return {"pick": self.record, "summary": self.name}

    @classmethod
    def from_record(cls, info: dict, run: RunDir) -> SearchPick:
        pick = info["pick"]
        return cls(pick["name"], pick["latency_ms"], pick, run.path(CANDIDATES),
                   run.path("search/pareto.png"))  # fmt: skip


Result = SearchPick


def _settings(ctx: RunContext, plan: SearchPlan) -> tuple[int, int | None]:
    """(few-shot k, params cap) of this mode."""
    auto = plan.mode == "auto"
    k = plan.few_shot_k if plan.few_shot_k is not None else AUTO_FEW_SHOT_K if auto else 0
    cap = size_cap(count_params(ctx.inputs.teacher.module), plan.latency_ms) if auto else None
    return k, cap


def _within(plan: SearchPlan, cap: int | None) -> str:
    parts = [f"within {plan.latency_ms:.3g} ms"] if plan.latency_ms is not None else []
    parts += [f"with at most {cap / 1e6:.2f}M params"] if cap is not None else []
    return " and ".join(parts) + (" (no latency budget)" if plan.latency_ms is None else "")


def describe(ctx: RunContext, plan: SearchPlan) -> str:
    return f"student {plan.mode}: search {_within(plan, _settings(ctx, plan)[1])}"


def key(ctx: RunContext, plan: SearchPlan) -> dict:
    k, cap = _settings(ctx, plan)
    return {
        "teacher": ctx.inputs.teacher_sha, "arch": ctx.inputs.teacher.arch,
        "data": ctx.inputs.data.fingerprint, "target": ctx.target.name,
        "latency_ms": plan.latency_ms, "mode": plan.mode, "candidates": space.candidates(),
        "max_params": cap, "few_shot_k": k, "few_shot_epochs": plan.few_shot_epochs,
        "seed": ctx.seed, "device": ctx.device,
    }  # fmt: skip


def _how(
    pick: Candidate, plan: SearchPlan, k: int, fit: list[Candidate], within: str, why: str | None
) -> str:
    """Why this candidate: the line the report and the log show. `why`: why the few-shot runs
    did not decide (`undecided`)."""
    at = f"{pick.latency_ms:.3f} ms {'measured' if pick.latency_measured else 'predicted'}"
    if not pick.within_budget:
        return f"no candidate meets {plan.latency_ms:.3g} ms: the fastest, {at}"
    if why is not None:
        return (
            f"{why}: they tell the candidates apart no better than a guess, so the proxy "
            f"ranking decides: the best DisWOT score of the {len(fit)} candidates {within}"
            f"{' among the tied' if 'tie' in why else ''}; {at}"
        )
    if pick.few_shot_acc is not None:
        shot = [c.name for c in fit if c.few_shot_acc is not None]
        return (
            f"best val {pick.few_shot_acc:.2f}% after {plan.few_shot_epochs} epoch(s) of KD "
            f"among {', '.join(shot)}: the top {k} by DisWOT and by params of the {len(fit)} "
            f"candidates {within}; {at}"
        )
    return f"best DisWOT score of the {len(fit)} candidates {within}; {at}"


def run(ctx: RunContext, plan: SearchPlan) -> SearchPick:
    k, cap = _settings(ctx, plan)
    teacher = ctx.inputs.teacher
    ranked = search(
        teacher.module, ctx.inputs.data, ctx.target, space.candidates(),
        latency_budget_ms=plan.latency_ms, few_shot_k=k, few_shot_epochs=plan.few_shot_epochs,
        seed=ctx.seed, device=ctx.device,
        distributed=False,  # under torchrun rank 0 searches alone
        teacher_arch=teacher.arch, max_params=cap, progress=ctx.reporter.message,
        teacher_args=teacher.meta.get("arch_args"),
    )  # fmt: skip
    data = ctx.inputs.data
    chance = chance_level(data.num_classes, len(data.val))
    pick = chosen(ranked, fastest_if_none=plan.mode == "auto", chance=chance)
    why = undecided(ranked, chance) if pick.within_budget else None
    path = write_results(ctx.run.path("search"), ranked, plan.latency_ms, pick)
    fit = [c for c in ranked if c.within_budget and c.scores]
    record = dataclasses.asdict(pick) | {
        "mode": plan.mode,
        "how": _how(pick, plan, k, fit, _within(plan, cap), why),
        "few_shot_undecided": why,
        "candidates_file": CANDIDATES,
        "diswot_reference": diswot_source(ranked),
        "few_shot": {c.name: c.few_shot_acc for c in fit if c.few_shot_acc is not None},
    }
    return SearchPick(pick.name, pick.latency_ms, record, path, path.parent / "pareto.png")
