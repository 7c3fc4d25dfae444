"""Grading a pool of branches as the seeds do: pools, status, proposals, privacy, checks.

Pure: plain numbers and enums in, frozen dataclasses out; no database, no Telegram. Each
rule names its section of ``docs/rules.md``, which cites the seed document it comes from.

How storage calls it (one pool at a time, see ``docs/rules.md`` §14):

1. ``pool_for(category)`` sorts the round's branches into pools (only the categories the
   round is scoped to, ``in_scope``).
2. Per branch, build ``BranchFacts`` from what storage already aggregates: the UNROUNDED
   mean of each part (``exact_mean``), ``shortfalls(coverage)``, ``deadline_passed(now,
   deadline, rerun)`` (the 补测 deadline when one is open), the veto, any waiver.
3. ``propose_pool(pool, facts, ...)`` gives one ``PoolProposal``: the basis it ranked on,
   whether it is complete (quotas applied) or provisional, per branch status and proposal.
4. ``disclosure(ballots, threshold)`` says which numbers a report may show.
5. Decisions go through ``surveys.decisions`` (``check_decisions``, exceptions, unlock).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from functools import lru_cache

from surveys.categories import Audience, Category
from surveys.memo import memo
from surveys.rules import (
    DEFAULT_COMPOSITE_WEIGHTS,
    DEFAULT_GOOD_SHARE,
    DEFAULT_POOR_SHARE,
    Coverage,
    Grade,
    Proposal,
    ProposalReason,
    Standing,
    propose_grades,
    quota_limits,
)

ZERO = Decimal(0)
_CENTS = Decimal("0.01")

# ---------------------------------------------------------------------------
# Pools and scope (docs/rules.md §2)
# ---------------------------------------------------------------------------


class Pool(StrEnum):
    """Branches whose grades share one set of quotas."""

    VILLAGE_COMMUNITY = "village_community"  # 村(社区): seed 001 三
    TWO_NEW = "two_new"  # 两新 = 非公企业 + 社会组织: seed 002 三(二)3, 三(五)2
    INSTITUTION = "institution"  # 机关事业单位: its own pool (an assumption, §2.3)


_POOL_OF: Mapping[Category, Pool] = {
    Category.VILLAGE: Pool.VILLAGE_COMMUNITY,
    Category.COMMUNITY: Pool.VILLAGE_COMMUNITY,
    Category.ENTERPRISE: Pool.TWO_NEW,
    Category.SOCIAL: Pool.TWO_NEW,
    Category.INSTITUTION: Pool.INSTITUTION,
}


def pool_for(category: Category) -> Pool | None:
    """The pool a branch is graded in; None for the committee, which grades and is not graded."""
    return _POOL_OF.get(category)


def in_scope(category: Category, scope: Collection[Category] | None) -> bool:
    """Whether a round scoped to ``scope`` (None: every graded category) grades this category."""
    if pool_for(category) is None:
        return False
    return scope is None or category in scope


# ---------------------------------------------------------------------------
# Parts a round requires (docs/rules.md §3)
# ---------------------------------------------------------------------------


class Part(StrEnum):
    """A component of a branch's grading; values are the round phases that produce them."""

    SELF_EVALUATION = "self_evaluation"  # 党支部自评 (seed 001 六.1)
    SATISFACTION = "satisfaction"  # 党员群众满意度测评 (seed 001 六.2)
    INSPECTION = "inspection"  # 观摩、检查、测评 (seed 003)
    SUPERIOR_SCORING = "superior_scoring"  # 镇党委评分定级 (seed 001 六.4)


class InstitutionSheet(StrEnum):
    """Which inspection sheet a 机关事业单位 is inspected with (a round option, §3.5)."""

    NONE = "none"  # not inspected: the seeds give no sheet for them (the default)
    VILLAGE = "village"
    TWO_NEW = "two_new"


DEFAULT_INSTITUTION_SHEET = InstitutionSheet.NONE

_SHEET_IDS: Mapping[InstitutionSheet, str | None] = {
    InstitutionSheet.NONE: None,
    InstitutionSheet.VILLAGE: "inspection_village",
    InstitutionSheet.TWO_NEW: "inspection_two_new",
}


def inspection_sheet(
    category: Category, institution_sheet: InstitutionSheet = DEFAULT_INSTITUTION_SHEET
) -> str | None:
    """The inspection instrument of a category (seed 003 gives two sheets), or None."""
    if category in (Category.VILLAGE, Category.COMMUNITY):
        return "inspection_village"
    if category in (Category.ENTERPRISE, Category.SOCIAL):
        return "inspection_two_new"
    if category is Category.INSTITUTION:
        return _SHEET_IDS[institution_sheet]
    return None


@lru_cache(maxsize=64)  # pure, few keys: asked once per branch of a county
def required_parts(
    category: Category,
    *,
    superior_scoring: bool = True,
    institution_sheet: InstitutionSheet = DEFAULT_INSTITUTION_SHEET,
) -> tuple[Part, ...]:
    """The parts a branch of this category needs before it can be graded."""
    parts = [Part.SELF_EVALUATION, Part.SATISFACTION]
    if inspection_sheet(category, institution_sheet) is not None:
        parts.append(Part.INSPECTION)
    if superior_scoring:
        parts.append(Part.SUPERIOR_SCORING)
    return tuple(parts)


# ---------------------------------------------------------------------------
# Exact arithmetic (docs/rules.md §5.1): round for display only
# ---------------------------------------------------------------------------


def exact_mean(values: Sequence[Decimal]) -> Decimal | None:
    """Unrounded mean of several scorers' totals (89.99 and 90 give 89.995)."""
    if not values:
        return None
    return sum(values, ZERO) / len(values)


_PARTS = {part.value: part for part in Part}


def exact_composite(
    parts: Mapping[Part, Decimal | None],
    weights: Mapping[str, Decimal] = DEFAULT_COMPOSITE_WEIGHTS,
) -> Decimal | None:
    """Unrounded weighted mean of the composite parts present, weights renormalized (§4)."""
    present: dict[str, Decimal] = {}
    for name, weight in weights.items():
        value = parts.get(_PARTS.get(name) or Part(name))  # no enum call per branch
        if value is not None and weight > 0:
            present[name] = value
    total_weight = sum((weights[name] for name in present), ZERO)
    if total_weight == 0:
        return None
    weighted = sum((weights[name] * value for name, value in present.items()), ZERO)
    return weighted / total_weight


def display_score(score: Decimal) -> Decimal:
    """Two places, half up, as the paper summary sheets show a score; never compare these."""
    return score.quantize(_CENTS, rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------------------
# A branch's status (docs/rules.md §6)
# ---------------------------------------------------------------------------

PARTICIPATION_AUDIENCES = (Audience.MEMBERS, Audience.MASSES)


class Status(StrEnum):
    """Whether a branch can be graded."""

    COMPLETE = "complete"  # every required part present, participation met (or waived)
    INCOMPLETE = "incomplete"  # something is missing; ``missing``/``shortfalls`` say what
    PARTICIPATION_NOT_MET = "participation_not_met"  # 参与面未达标 at its deadline: no grade


class Remedy(StrEnum):
    """The ways forward for a branch whose participation is not met (seed 000 二.2)."""

    RERUN = "rerun"  # 补测: reopen the satisfaction phase for this branch, own deadline
    WAIVER = "waiver"  # an organizer decides, with a reason, to grade it anyway (audited)


def require_reason(reason: str | None) -> str:
    """A reason, stripped; every exception to a rule needs one (kept in the audit log)."""
    text = (reason or "").strip()
    if not text:
        raise ValueError("a reason is required")
    return text


@dataclass(frozen=True)
class ParticipationWaiver:
    """An organizer's decision to grade a branch although its participation fell short."""

    reason: str
    decided_by: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", require_reason(self.reason))


@dataclass(frozen=True)
class Rerun:
    """补测: the satisfaction phase reopened for one branch, with its own deadline (UTC)."""

    deadline: datetime
    reason: str
    ordered_by: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", require_reason(self.reason))


def deadline_passed(now: datetime, deadline: datetime, rerun: Rerun | None = None) -> bool:
    """Whether a branch's participation is judged: the phase deadline, or its 补测 deadline."""
    return now >= (rerun.deadline if rerun is not None else deadline)


def shortfalls(coverage: Mapping[Audience, Coverage]) -> dict[Audience, int]:
    """Respondents still needed per participation audience (members, masses) from coverage.

    An audience whose roster count is 0 needs nobody (``Coverage.needed`` is 0); a
    members-only branch has no masses coverage at all.
    """
    return {
        audience: coverage[audience].needed
        for audience in PARTICIPATION_AUDIENCES
        if audience in coverage
    }


def participation_gap(coverage: Mapping[Audience, Coverage]) -> int:
    """差N人: respondents a branch still needs, the one number every screen and message shows.

    The members' and the masses' shortfalls (§6), the same that decide 参与面未达标. A
    committee member's self-evaluation and the township's inspectors and organizers are
    not participation, so they never count here (issue 14: /coverage said 差 6 人 where the
    reminder said 差5人 for the same data).
    """
    return sum(shortfalls(coverage).values())


@dataclass(frozen=True)
class BranchFacts:
    """What storage knows about one branch, in plain values.

    ``parts`` are UNROUNDED means (``exact_mean``); ``shortfalls`` are the respondents
    still needed per audience (``Coverage.needed``); ``deadline_passed`` refers to the
    satisfaction deadline, or to the branch's 补测 deadline while a re-run is open.
    A members-only branch (以全体党员测评为准) simply has no masses target.
    """

    org_id: int
    category: Category
    parts: Mapping[Part, Decimal | None]
    shortfalls: Mapping[Audience, int] = field(default_factory=dict)
    deadline_passed: bool = False
    vetoed: bool = False
    waiver: ParticipationWaiver | None = None


@dataclass(frozen=True)
class BranchStatus:
    """Where a branch stands; an incomplete one names what is missing."""

    org_id: int
    status: Status
    missing: tuple[Part, ...] = ()
    shortfalls: Mapping[Audience, int] = field(default_factory=dict)
    remedies: tuple[Remedy, ...] = ()
    waived: bool = False


def branch_status(facts: BranchFacts, required: Sequence[Part]) -> BranchStatus:
    """Complete, incomplete (what is missing) or 参与面未达标 (seed 000 二.2, seed 001 七.1)."""
    missing = tuple(part for part in required if facts.parts.get(part) is None)
    short = {
        audience: needed
        for audience, needed in facts.shortfalls.items()
        if audience in PARTICIPATION_AUDIENCES and needed > 0
    }
    waived = bool(short) and facts.waiver is not None
    if short and not waived and facts.deadline_passed:
        return BranchStatus(
            facts.org_id,
            Status.PARTICIPATION_NOT_MET,
            missing,
            short,
            remedies=(Remedy.RERUN, Remedy.WAIVER),
        )
    if missing or (short and not waived):
        return BranchStatus(facts.org_id, Status.INCOMPLETE, missing, {} if waived else short)
    return BranchStatus(facts.org_id, Status.COMPLETE, waived=waived)


# ---------------------------------------------------------------------------
# Proposals over one pool (docs/rules.md §5)
# ---------------------------------------------------------------------------


class Basis(StrEnum):
    """What a pool is ranked on; never a mix of the two."""

    SUPERIOR = "superior_scoring"  # the committee's scores (上级党组织评分定级表)
    COMPOSITE = "composite"  # provisional composites (an assumption: 30/40/30)


@dataclass(frozen=True)
class BranchProposal:
    """A branch's status and, when complete, its proposed grade."""

    status: BranchStatus
    score: Decimal | None = None  # unrounded, on the pool's basis
    rank: int | None = None
    grade: Grade | None = None
    by_threshold: Grade | None = None
    reason: ProposalReason | None = None
    tie_at_edge: bool = False

    @property
    def org_id(self) -> int:
        """The branch."""
        return self.status.org_id


@dataclass(frozen=True)
class PoolProposal:
    """The proposals of one pool, ranked on one named basis.

    ``complete``: every branch is complete or 参与面未达标 at its deadline, so the quotas
    applied over the ``graded`` complete branches. Otherwise the proposals are provisional:
    thresholds and vetoes only, ``max_good``/``min_poor`` are None.
    """

    pool: Pool
    basis: Basis
    complete: bool
    graded: int
    max_good: int | None
    min_poor: int | None
    branches: tuple[BranchProposal, ...]

    @property
    def provisional(self) -> bool:
        """Whether the proposals may still change as missing parts arrive."""
        return not self.complete

    def branch(self, org_id: int) -> BranchProposal | None:
        """One branch's proposal, if it is in this pool."""
        return self._by_org.get(org_id)

    @memo
    def _by_org(self) -> dict[int, BranchProposal]:
        # Looked up once per branch of a county: a scan each time would be quadratic.
        return {b.org_id: b for b in self.branches}


def choose_basis(complete: Sequence[BranchFacts], *, superior_scoring: bool = True) -> Basis:
    """The committee's scores when every ranked branch has one, else composites for all."""
    if not complete:
        return Basis.SUPERIOR if superior_scoring else Basis.COMPOSITE
    if all(f.parts.get(Part.SUPERIOR_SCORING) is not None for f in complete):
        return Basis.SUPERIOR
    return Basis.COMPOSITE


def basis_score(
    facts: BranchFacts, basis: Basis, weights: Mapping[str, Decimal] = DEFAULT_COMPOSITE_WEIGHTS
) -> Decimal | None:
    """A branch's unrounded score on the given basis."""
    if basis is Basis.SUPERIOR:
        return facts.parts.get(Part.SUPERIOR_SCORING)
    return exact_composite(facts.parts, weights)


def _score(facts: BranchFacts, basis: Basis, weights: Mapping[str, Decimal]) -> Decimal:
    """The basis score of a complete branch, which has every part the basis needs."""
    score = basis_score(facts, basis, weights)
    if score is None:
        raise ValueError(f"branch {facts.org_id} has no {basis} score")
    return score


def _check_pool(pool: Pool, facts: Sequence[BranchFacts]) -> None:
    """Refuse branches of another pool and duplicates: quotas are per pool (§5.2)."""
    ids = [f.org_id for f in facts]
    if len(set(ids)) != len(ids):
        raise ValueError("each org_id may appear only once")
    strays = [f.org_id for f in facts if pool_for(f.category) is not pool]
    if strays:
        raise ValueError(f"branches {strays} are not in pool {pool}")


def propose_pool(
    pool: Pool,
    facts: Sequence[BranchFacts],
    *,
    superior_scoring: bool = True,
    institution_sheet: InstitutionSheet = DEFAULT_INSTITUTION_SHEET,
    weights: Mapping[str, Decimal] = DEFAULT_COMPOSITE_WEIGHTS,
    good_share: Decimal = DEFAULT_GOOD_SHARE,
    poor_share: Decimal = DEFAULT_POOR_SHARE,
) -> PoolProposal:
    """Status of every branch of a pool, and proposals for the complete ones (§5, §6)."""
    _check_pool(pool, facts)
    statuses = {
        f.org_id: branch_status(
            f,
            required_parts(
                f.category, superior_scoring=superior_scoring, institution_sheet=institution_sheet
            ),
        )
        for f in facts
    }
    complete = [f for f in facts if statuses[f.org_id].status is Status.COMPLETE]
    basis = choose_basis(complete, superior_scoring=superior_scoring)
    pool_complete = bool(facts) and all(
        s.status is not Status.INCOMPLETE for s in statuses.values()
    )
    standings = [Standing(f.org_id, _score(f, basis, weights), f.vetoed) for f in complete]
    proposed = {
        p.org_id: p
        for p in propose_grades(standings, good_share, poor_share, apply_quotas=pool_complete)
    }
    max_good, min_poor = quota_limits(len(complete), good_share, poor_share)
    branches = [_branch_proposal(statuses[f.org_id], proposed.get(f.org_id)) for f in facts]
    branches.sort(key=lambda b: (b.rank is None, b.rank or 0, b.org_id))
    return PoolProposal(
        pool=pool,
        basis=basis,
        complete=pool_complete,
        graded=len(complete),
        max_good=max_good if pool_complete else None,
        min_poor=min_poor if pool_complete else None,
        branches=tuple(branches),
    )


def _branch_proposal(status: BranchStatus, proposal: Proposal | None) -> BranchProposal:
    if proposal is None:
        return BranchProposal(status=status)
    return BranchProposal(
        status=status,
        score=proposal.score,
        rank=proposal.rank,
        grade=proposal.grade,
        by_threshold=proposal.by_threshold,
        reason=proposal.reason,
        tie_at_edge=proposal.tie_at_edge,
    )


# ---------------------------------------------------------------------------
# Privacy: hide numbers, never change a grade (docs/rules.md §7)
# ---------------------------------------------------------------------------

DEFAULT_SMALL_GROUP_THRESHOLD = 5


@dataclass(frozen=True)
class Disclosure:
    """Which numbers of a branch a report may show. The grade is always shown."""

    small_group: bool
    satisfaction: bool  # 满意度 score, 三率, per-option counts
    composite: bool  # the composite number (it contains the satisfaction score)
    parts: bool = True  # self-evaluation, inspection, superior scores (no ballot in them)


def disclosure(ballots: int, threshold: int = DEFAULT_SMALL_GROUP_THRESHOLD) -> Disclosure:
    """Below the threshold, hide the satisfaction numbers and the composite number.

    The composite minus its other parts gives the satisfaction score back, and organizers
    see the other parts, so for a small group the composite is hidden too; the ballots
    still count in it and in the grade (§7).
    """
    if ballots < 0:
        raise ValueError("ballots must not be negative")
    small = ballots < threshold
    return Disclosure(small_group=small, satisfaction=not small, composite=not small)
