"""Per-pool proposals of a round: storage's facts fed to ``surveys.grading.propose_pool``.

Split from ``storage.tallies`` (which reads and aggregates): this module turns the
aggregates of every branch into ``BranchFacts`` — unrounded means, all ballots counted
(privacy hides numbers, never changes a grade: docs/rules.md §7.3), shortfalls from
coverage, whether the satisfaction (or the branch's 补测) deadline has passed, veto and
waiver — and proposes each pool once, on one named basis (docs/rules.md §5, §6).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from surveys.categories import Audience, Category
from surveys.grading import (
    BranchFacts,
    BranchProposal,
    BranchStatus,
    Part,
    ParticipationWaiver,
    Pool,
    PoolProposal,
    Rerun,
    branch_status,
    deadline_passed,
    pool_for,
    propose_pool,
    required_parts,
    shortfalls,
)
from surveys.rules import Coverage, Proposal


@dataclass(frozen=True)
class BranchInput:
    """One branch's aggregates, unrounded, as storage.tallies read them."""

    org_id: int
    category: Category
    parts: Mapping[Part, Decimal | None]
    coverage: Mapping[Audience, Coverage]
    vetoed: bool


@dataclass(frozen=True)
class Context:
    """What the whole round contributes: time, deadlines, remedies, options."""

    now: datetime | None  # None: no deadline is judged (statuses stay incomplete)
    deadline: datetime | None  # the round's satisfaction deadline
    reruns: Mapping[int, Rerun]
    waivers: Mapping[int, ParticipationWaiver]
    superior_scoring: bool
    weights: Mapping[str, Decimal]
    good_share: Decimal
    poor_share: Decimal


def deadline_passed_for(context: Context, org_id: int) -> bool:
    """Whether the branch's satisfaction (or 补测) deadline has passed at the context's now."""
    if context.now is None or context.deadline is None:
        return False
    return deadline_passed(context.now, context.deadline, context.reruns.get(org_id))


def facts_for(branch: BranchInput, context: Context) -> BranchFacts:
    """The pure facts of one branch (docs/rules.md §14)."""
    return BranchFacts(
        org_id=branch.org_id,
        category=branch.category,
        parts=branch.parts,  # read only; storage.tallies builds one mapping per branch
        shortfalls=shortfalls(branch.coverage),
        deadline_passed=deadline_passed_for(context, branch.org_id),
        vetoed=branch.vetoed,
        waiver=context.waivers.get(branch.org_id),
    )


def propose_round(branches: Sequence[BranchInput], context: Context) -> dict[Pool, PoolProposal]:
    """One PoolProposal per pool that has branches in the round."""
    by_pool: dict[Pool, list[BranchFacts]] = defaultdict(list)
    for branch in branches:
        pool = pool_for(branch.category)
        if pool is not None:
            by_pool[pool].append(facts_for(branch, context))
    return {
        pool: propose_pool(
            pool,
            facts,
            superior_scoring=context.superior_scoring,
            weights=context.weights,
            good_share=context.good_share,
            poor_share=context.poor_share,
        )
        for pool, facts in by_pool.items()
    }


def status_of(branch: BranchInput, context: Context) -> BranchStatus:
    """One branch's status alone, as its pool's proposal would give it (no quotas needed)."""
    return branch_status(
        facts_for(branch, context),
        required_parts(branch.category, superior_scoring=context.superior_scoring),
    )


def as_proposal(branch: BranchProposal | None) -> Proposal | None:
    """The proposal in the shape the reports and decisions read; None without a grade."""
    if branch is None or branch.grade is None or branch.score is None:
        return None
    assert branch.rank is not None and branch.by_threshold is not None
    assert branch.reason is not None
    return Proposal(
        org_id=branch.org_id,
        score=branch.score,
        rank=branch.rank,
        grade=branch.grade,
        by_threshold=branch.by_threshold,
        reason=branch.reason,
        tie_at_edge=branch.tie_at_edge,
    )
