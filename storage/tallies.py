"""Live tallies of a round: participation, 三率, scores, composite and proposed grades.

Everything is aggregated in SQL with a fixed number of queries per round, whatever the
number of branches (GROUP BY over assignments, responses, answers and the anonymous
satisfaction counters); the per-branch arithmetic then runs in Python on the grouped rows.

Grading (docs/rules.md §5, §6): ``storage.proposals`` proposes each pool once with
``surveys.grading.propose_pool`` from the UNROUNDED means, on one named basis (the
committee's scores, or the provisional composites of all), provisional until the pool is
complete, and 参与面未达标 once the satisfaction (or 补测) deadline passed below target.

Privacy (docs/rules.md §7): a branch with fewer ballots than ``small_group_threshold``
shows no satisfaction breakdown and no composite number (it would give the satisfaction
score back); its ballots still count in the score and the grade.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from storage import proposals as grading
from storage import tally_memo
from storage import tally_reads as reads
from storage.models import Round, RoundInstrument
from storage.participation import BranchCoverage, assigned_coverage
from storage.remedies import reruns, satisfaction_deadline, waivers
from storage.tally_reads import (
    SELF_EVALUATION,
    SUPERIOR,
    Decision,
    satisfaction_instrument,
)
from surveys.categories import INSPECTION_SHEETS, Audience, Category
from surveys.grading import (
    Basis,
    BranchStatus,
    Disclosure,
    Part,
    Pool,
    PoolProposal,
    Status,
    disclosure,
    exact_composite,
    pool_for,
)
from surveys.instruments import Instrument
from surveys.options import RoundOptions
from surveys.rules import Composite, Coverage, Grade, Proposal, Rates, composite
from surveys.scoring import SatisfactionSummary, summarize_satisfaction

INSPECTIONS = tuple(dict.fromkeys(INSPECTION_SHEETS.values()))  # each sheet once


@dataclass(frozen=True)
class BranchTally:
    """Everything known about one branch in a round, as far as privacy allows."""

    org_id: int
    name: str
    category: Category
    members_only: bool
    coverage: dict[Audience, Coverage]
    ballots: int
    small_group: bool  # ballots < threshold: no breakdown, no composite number (still counted)
    rates: Rates | None
    satisfaction_score: Decimal | None
    distribution: dict[str, dict[str, int]] | None  # item → option → count
    self_evaluation: Decimal | None  # mean of the committee members' totals
    self_evaluation_by_item: dict[str, Decimal]  # mean per indicator
    self_evaluators: int
    inspection: Decimal | None  # mean of the inspectors' totals
    inspection_by_section: dict[str, Decimal]  # mean per dimension
    inspectors: int
    superior: Decimal | None  # mean of the organizers' superior scoring totals
    superior_scorers: int
    composite: Composite  # unrounded; score None for a small group (docs/rules.md §7.2)
    grading_score: Decimal | None  # unrounded score on the pool's basis, None where hidden
    vetoed: bool
    vetoes: list[str]
    proposal: Proposal | None  # only for a complete branch (docs/rules.md §6.3)
    decision: Decision | None
    pool: Pool | None = None
    status: BranchStatus | None = None
    basis: Basis | None = None
    provisional: bool = True  # the pool is not complete: no quota applied yet (§5.2)
    score: Decimal | None = None  # unrounded basis score, never shown for a hidden number

    @property
    def participation_not_met(self) -> bool:
        """参与面未达标 at its deadline: no grade (docs/rules.md §6.3)."""
        return self.status is not None and self.status.status is Status.PARTICIPATION_NOT_MET

    @property
    def respondents(self) -> int:
        """Satisfaction respondents (members and masses) so far."""
        return sum(
            self.coverage[a].respondents
            for a in (Audience.MEMBERS, Audience.MASSES)
            if a in self.coverage
        )

    @property
    def grade(self) -> Grade | None:
        """The final grade when decided, else the proposed one."""
        if self.decision is not None and self.decision.final_grade is not None:
            return self.decision.final_grade
        return self.proposal.grade if self.proposal is not None else None


@dataclass(frozen=True)
class RoundTally:
    """The tallies of the branches asked for, and each pool's proposal (basis, quotas)."""

    round_id: int
    branches: list[BranchTally]
    threshold: int
    pools: dict[Pool, PoolProposal] = field(default_factory=dict)
    weights: dict[str, Decimal] = field(default_factory=dict)

    def branch(self, org_id: int) -> BranchTally | None:
        """The tally of one branch, if it is in this result."""
        return next((b for b in self.branches if b.org_id == org_id), None)

    @property
    def graded(self) -> int:
        """Complete branches over all pools (each pool's quota base)."""
        return sum(pool.graded for pool in self.pools.values())

    @property
    def max_good(self) -> int | None:
        """Most 好 over the complete pools; None while no pool is complete."""
        limits = [p.max_good for p in self.pools.values() if p.max_good is not None]
        return sum(limits) if limits else None

    @property
    def min_poor(self) -> int | None:
        """Fewest 较差 over the complete pools; None while no pool is complete."""
        limits = [p.min_poor for p in self.pools.values() if p.min_poor is not None]
        return sum(limits) if limits else None


# --- Assembly ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RoundData:
    """Every grouped row of the round, read once."""

    coverage: dict[int, BranchCoverage]
    summaries: dict[int, tuple[Any, ...]]  # reads.summary_rows: ballots, satisfaction sums
    tallies: dict[int, dict[tuple[str, str], int]]
    totals: dict[int, tuple[Any, ...]]  # reads.total_rows over _NAMED
    self_items: dict[int, dict[str, Any]]
    inspection_sections: dict[int, dict[str, Any]]
    vetoes: dict[int, list[str]]
    decisions: dict[int, Decision]
    instrument: Instrument | None  # the pinned satisfaction form, read for a distribution only


def _read_round(
    session: Session,
    round_: Round,
    only: Collection[int] | None,
    wanted: Collection[int] | None,
    flags: tuple[bool, bool],
) -> _RoundData:
    """The grouped rows of the branches in ``only`` (None: all, as the quotas need them).

    Ballots, satisfaction sums and named totals come from the per-branch summaries (one row
    per branch, storage.summary); per-item details and counts only where ``wanted``, when
    asked for (``flags``: distribution, details).
    """
    round_id = round_.id
    assert round_id is not None
    distribution, details = flags
    instrument = satisfaction_instrument(session, round_id) if distribution else None
    return _RoundData(
        coverage=assigned_coverage(session, round_=round_, org_ids=only),
        summaries=reads.summary_rows(session, round_id, only),
        tallies=reads.tallies(session, round_id, wanted) if distribution else {},
        totals=reads.total_rows(session, round_id, only, _NAMED),
        self_items=(
            reads.answer_sums(session, round_id, [SELF_EVALUATION], True, wanted) if details else {}
        ),
        inspection_sections=(
            reads.answer_sums(session, round_id, INSPECTIONS, False, wanted) if details else {}
        ),
        vetoes=reads.vetoes(session, round_id, only),
        decisions=reads.decisions(session, round_id, only),
        instrument=instrument,
    )


def _inspection_totals(data: _RoundData, org_id: int) -> reads.Totals:
    """Both inspection sheets together: a branch is inspected with the one of its category."""
    row = data.totals.get(org_id)
    present = [t for t in (_totals(row, i) for i in INSPECTIONS) if t.count]
    if len(present) == 1:  # the usual case: its mean is the mean of the sum of one
        return present[0]
    if not present:
        return _NO_TOTALS
    return reads.Totals(
        sum((reads.exact(p.total) for p in present), Decimal(0)), sum(p.count for p in present)
    )


def _ballots(data: _RoundData, org_id: int) -> int:
    row = data.summaries.get(org_id)
    return int(row[0]) if row is not None else 0


def _means(sums: Mapping[str, Any], count: int) -> dict[str, Decimal]:
    return {name: reads.mean_of(total, count) for name, total in sums.items()} if count else {}


@dataclass(frozen=True)
class _Scores:
    """What the pool's proposal needs of one branch, every ballot counted (§7.3)."""

    satisfaction: reads.SatisfactionSums  # counted whatever the group size; shown per disclosure
    self_totals: reads.Totals
    inspection_totals: reads.Totals
    superior_totals: reads.Totals
    composite: Composite  # exact score of the parts present
    vetoes: list[str]
    parts: dict[Part, Decimal | None]  # the unrounded means of every part, for BranchFacts


_NO_TOTALS = reads.Totals(0, 0)
_NAMED = (SELF_EVALUATION, *INSPECTIONS, SUPERIOR)  # the columns of reads.total_rows


def _totals(row: tuple[Any, ...] | None, instrument_id: str) -> reads.Totals:
    return reads.totals_of(row, _NAMED.index(instrument_id))


def _scores(data: _RoundData, org_id: int, weights: _Weights) -> _Scores:
    satisfaction = reads.sums_of(data.summaries.get(org_id))
    totals = data.totals.get(org_id)
    self_totals = _totals(totals, SELF_EVALUATION)
    inspection_totals = _inspection_totals(data, org_id)
    superior_totals = _totals(totals, SUPERIOR)
    # Part is a StrEnum: a Part key is found by its plain name, as rules.composite looks.
    parts: dict[Part, Decimal | None] = {
        Part.SELF_EVALUATION: self_totals.mean,
        Part.SATISFACTION: satisfaction.score,
        Part.INSPECTION: inspection_totals.mean,
    }
    # rules.composite for the weights used and what is missing; the score itself exact.
    mix = composite(parts, weights.weights)
    if not weights.all_positive:  # a zero weight: rules counts the part, the exact score not
        mix = Composite(exact_composite(parts, weights.weights), mix.weights_used, mix.missing)
    parts[Part.SUPERIOR_SCORING] = superior_totals.mean
    return _Scores(
        satisfaction=satisfaction,
        self_totals=self_totals,
        inspection_totals=inspection_totals,
        superior_totals=superior_totals,
        composite=mix,
        vetoes=data.vetoes.get(org_id, []),
        parts=parts,
    )


@dataclass(frozen=True)
class _Weights:
    """The round's composite weights, and whether every one is positive (checked once).

    With every weight positive, rules.composite's score is the exact composite itself (the
    same sum in the same order), so it is not computed twice per branch.
    """

    weights: dict[str, Decimal]
    all_positive: bool

    @classmethod
    def of(cls, weights: dict[str, Decimal]) -> _Weights:
        return cls(weights, all(weight > 0 for weight in weights.values()))


def _distribution(data: _RoundData, org_id: int, ballots: int) -> dict[str, dict[str, int]]:
    """Counts per question and option, zeros included (checked against the instrument)."""
    tallies = data.tallies.get(org_id, {})
    assert data.instrument is not None  # read with the distribution
    return summarize_satisfaction(data.instrument, ballots, tallies).distribution


def _branch(
    data: _RoundData,
    org_id: int,
    scores: _Scores,
    pool: PoolProposal | None,
    options: RoundOptions,
    distribution: bool,
) -> BranchTally:
    cov = data.coverage[org_id]
    ballots = _ballots(data, org_id)
    shown = _disclosure(ballots, options.small_group_threshold)
    satisfaction = scores.satisfaction if shown.satisfaction else None
    proposed = pool.branch(org_id) if pool is not None else None
    basis = pool.basis if pool is not None else None
    exact = _basis_score(scores, basis)
    # On the composite basis the score is the composite: hidden with it for a small group.
    visible = exact if (shown.composite or basis is Basis.SUPERIOR) else None
    return BranchTally(
        org_id=org_id,
        name=cov.name,
        category=cov.category,
        members_only=cov.members_only,
        coverage=cov.coverage,
        ballots=ballots,
        small_group=shown.small_group,
        rates=satisfaction.rates if satisfaction is not None else None,
        satisfaction_score=satisfaction.score if satisfaction is not None else None,
        distribution=(
            _distribution(data, org_id, ballots) if satisfaction and distribution else None
        ),
        self_evaluation=scores.self_totals.mean,
        self_evaluation_by_item=_means(data.self_items.get(org_id, {}), scores.self_totals.count),
        self_evaluators=scores.self_totals.count,
        inspection=scores.inspection_totals.mean,
        inspection_by_section=_means(
            data.inspection_sections.get(org_id, {}), scores.inspection_totals.count
        ),
        inspectors=scores.inspection_totals.count,
        superior=scores.superior_totals.mean,
        superior_scorers=scores.superior_totals.count,
        composite=scores.composite if shown.composite else replace(scores.composite, score=None),
        grading_score=visible,
        vetoed=bool(scores.vetoes),
        vetoes=list(scores.vetoes),
        proposal=grading.as_proposal(proposed),
        decision=data.decisions.get(org_id),
        pool=pool.pool if pool is not None else None,
        status=proposed.status if proposed is not None else None,
        basis=basis,
        provisional=pool.provisional if pool is not None else True,
        score=exact,
    )


@lru_cache(maxsize=64)  # a frozen answer per (ballots, threshold): one per branch otherwise
def _disclosure(ballots: int, threshold: int) -> Disclosure:
    return disclosure(ballots, threshold)


def _basis_score(scores: _Scores, basis: Basis | None) -> Decimal | None:
    if basis is Basis.SUPERIOR:
        return scores.superior_totals.mean
    return scores.composite.score


def _sort_key(branch: BranchTally) -> tuple[str, int, int, str, int]:
    """Pool by pool; ranked branches first by rank, then the rest by name."""
    rank = branch.proposal.rank if branch.proposal is not None else None
    pool = branch.pool.value if branch.pool is not None else "~"
    return (pool, rank is None, rank or 0, branch.name, branch.org_id)


def _context(
    session: Session,
    round_id: int,
    options: RoundOptions,
    now: datetime | None,
    only: Collection[int] | None,
) -> grading.Context:
    """The round's part of every proposal; deadlines and re-runs only when judged (``now``)."""
    return grading.Context(
        now=now,
        deadline=satisfaction_deadline(session, round_id=round_id) if now is not None else None,
        reruns=reruns(session, round_id=round_id, org_ids=only) if now is not None else {},
        waivers=waivers(session, round_id=round_id),
        superior_scoring=session.get(RoundInstrument, (round_id, SUPERIOR)) is not None,
        weights=options.composite_weights,
        good_share=options.good_share,
        poor_share=options.poor_share,
    )


def round_tally(
    session: Session,
    *,
    round_id: int,
    org_ids: Collection[int] | None = None,
    distribution: bool = False,
    now: datetime | None = None,
    extra_vetoes: Mapping[int, Collection[str]] | None = None,
    details: bool = True,
    proposals: bool = True,
) -> RoundTally:
    """The live tally of a round; each pool proposed over all its branches in the round.

    ``org_ids`` filters the branches returned. With ``proposals`` (the default) a branch's
    proposal is made in the context of its whole pool, so every branch is read; without,
    only the branches asked for are read and none has a proposal (a secretary's or an
    inspector's view: the committee's decided grades only), its status still judged.
    ``distribution`` also loads the counts per question and option, ``details`` the means
    per indicator and dimension (both only for the branches returned). ``now`` judges the
    satisfaction deadlines (参与面未达标); without it no deadline has passed. ``extra_vetoes``
    adds veto conditions not stored (yet): the tally as it would be once they are, shown
    before an organizer confirms one.

    The rows are read every time; the arithmetic of a branch (and of a pool) whose rows
    are equal to the last tally's is taken from ``storage.tally_memo``.
    """
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise LookupError(f"round {round_id}")
    if not proposals and org_ids is None:
        raise ValueError("a tally without proposals is of given branches")
    options = RoundOptions.from_json(round_.options)
    only = None if proposals else org_ids
    data = _read_round(session, round_, only, org_ids, (distribution, details))
    for org_id, codes in (extra_vetoes or {}).items():
        data.vetoes[org_id] = [*data.vetoes.get(org_id, []), *codes]
    memo_key = (round_id, _options_key(round_.options), distribution, details, proposals)
    last = tally_memo.last(memo_key)
    memo = tally_memo.Memo()
    weights = _Weights.of(options.composite_weights)
    for org_id in data.coverage:
        memo.branches[org_id] = _kept_branch(data, org_id, weights, last)
    context = _context(session, round_id, options, now, only)
    pools = _propose_pools(memo, last, context) if proposals else {}
    wanted = set(memo.branches) if org_ids is None else set(org_ids) & set(memo.branches)
    branches = []
    for org_id in wanted:
        kept = memo.branches[org_id]
        pool = _pool_of(pools, data.coverage[org_id].category)
        # Without proposals: the status alone, as the pool would have judged it.
        status = None if proposals else grading.status_of(kept.input, context)
        shown = _shown(pool, org_id) if proposals else (status,)
        view = kept.view  # read once: another thread may set it meanwhile (one tuple)
        if view is None or view[0] != shown:
            branch = _branch(data, org_id, kept.scores, pool, options, distribution)
            if status is not None:
                branch = replace(branch, status=status, pool=pool_for(branch.category))
            view = kept.view = (shown, branch)
        branches.append(view[1])
    tally_memo.keep(memo_key, memo)
    return RoundTally(
        round_id=round_id,
        branches=sorted(branches, key=_sort_key),
        threshold=options.small_group_threshold,
        pools=pools,
        weights=options.composite_weights,
    )


def warm_open_rounds(engine: Engine, *, now: datetime) -> list[int]:
    """Tally each open round as the organizers' screens ask for it; the ids tallied.

    Why: the first tally after a start has no memo and computes every branch, about 2.5×
    the raw-SQL floor for a county (issue 12); the bot takes it right after it starts
    (bot/warm.py), so /tally, /grades and a decision then find every unchanged branch kept.
    The flags are those of ``bot.reports``' county views: proposals, no per-indicator means.
    """
    with Session(engine) as session:
        open_ids = [
            i for i in session.exec(select(Round.id).where(Round.status == "open")) if i is not None
        ]
        for round_id in open_ids:
            round_tally(session, round_id=round_id, now=now, details=False)
    return open_ids


def _options_key(options: Mapping[str, Any] | None) -> str:
    """The round's options as one comparable string (weights, shares, targets, threshold)."""
    return json.dumps(options or {}, sort_keys=True, default=str)


def _branch_rows(data: _RoundData, org_id: int) -> tuple[Any, ...]:
    """Everything read of one branch: equal rows give an equal tally (the memo's key)."""
    return (
        data.coverage[org_id],
        data.summaries.get(org_id),
        data.totals.get(org_id),
        tuple(data.vetoes.get(org_id, ())),
        data.decisions.get(org_id),
        data.self_items.get(org_id),
        data.inspection_sections.get(org_id),
        data.tallies.get(org_id),
        data.instrument if org_id in data.tallies else None,
    )


def _kept_branch(
    data: _RoundData, org_id: int, weights: _Weights, last: tally_memo.Memo
) -> tally_memo.KeptBranch:
    """The branch's scores and proposal input: the last tally's when its rows are equal."""
    rows = _branch_rows(data, org_id)
    kept = last.branches.get(org_id)
    if kept is not None and kept.rows == rows:
        return kept
    scores = _scores(data, org_id, weights)
    cov = data.coverage[org_id]
    branch_input = grading.BranchInput(
        org_id=org_id,
        category=cov.category,
        parts=scores.parts,
        coverage=cov.coverage,
        vetoed=bool(scores.vetoes),
    )
    return tally_memo.KeptBranch(rows=rows, scores=scores, input=branch_input)


def _propose_pools(
    memo: tally_memo.Memo, last: tally_memo.Memo, context: grading.Context
) -> dict[Pool, PoolProposal]:
    """Each pool proposed once; the last tally's proposal where its inputs are all equal."""
    by_pool: dict[Pool, list[grading.BranchInput]] = {}
    for kept in memo.branches.values():
        pool = pool_for(kept.input.category)
        if pool is not None:
            by_pool.setdefault(pool, []).append(kept.input)
    proposals: dict[Pool, PoolProposal] = {}
    for pool, inputs in by_pool.items():
        judged = _judged(context, inputs)
        kept_pool = last.pools.get(pool)
        if kept_pool is None or not kept_pool.still(judged, inputs):
            proposed = grading.propose_round(inputs, context)[pool]
            kept_pool = tally_memo.KeptPool(judged, tuple(inputs), proposed)
        memo.pools[pool] = kept_pool
        proposals[pool] = kept_pool.proposal
    return proposals


def _judged(context: grading.Context, inputs: Sequence[grading.BranchInput]) -> tuple[Any, ...]:
    """What of the round's context a pool's proposal depends on, beyond the round's options
    (weights and shares are in the memo's key): ``now`` only through which deadlines have
    passed, the waivers, and whether the committee scores."""
    passed = tuple(grading.deadline_passed_for(context, b.org_id) for b in inputs)
    return (passed, context.waivers, context.superior_scoring)


def _shown(pool: PoolProposal | None, org_id: int) -> tuple[Any, ...]:
    """The pool's word on one branch: what its BranchTally takes from the pool."""
    if pool is None:
        return (None,)
    return (pool.branch(org_id), pool.pool, pool.basis, pool.provisional)


def _pool_of(pools: Mapping[Pool, PoolProposal], category: Category) -> PoolProposal | None:
    pool = pool_for(category)
    return pools.get(pool) if pool is not None else None


def satisfaction_by_branch(
    session: Session, *, round_id: int, threshold: int
) -> dict[int, tuple[SatisfactionSummary | None, int]]:
    """Per branch: (summary, or None below the small-group threshold, as here; ballots)."""
    ballots, _ = reads.summaries(session, round_id, None)
    shown = {org_id for org_id, count in ballots.items() if count >= threshold}
    tallies = reads.tallies(session, round_id, shown) if shown else {}
    form = satisfaction_instrument(session, round_id) if shown else None
    return {
        o: (summarize_satisfaction(form, n, tallies[o]) if form and o in shown else None, n)
        for o, n in ballots.items()
    }
