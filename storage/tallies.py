"""Live tallies of a round: participation, 三率, scores, composite and proposed grades.

Everything is aggregated in SQL with a fixed number of queries per round, whatever the
number of branches (GROUP BY over assignments, responses, answers and the anonymous
satisfaction counters); the per-branch arithmetic then runs in Python on the grouped rows.

Which score grades a branch (``grading_score``): the mean of the township committee's
superior scoring (上级党组织评分定级表) once at least one organizer has scored the branch;
until then the provisional composite (30% self-evaluation + 40% satisfaction + 30%
inspection by default, renormalized over the parts present).

Privacy (DOMAIN §7): a branch with fewer ballots than ``small_group_threshold`` shows
participation only — no rates, no score, no distribution — and its satisfaction score is
also left out of its composite, since the composite would otherwise reveal it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, select

from storage.models import (
    Answer,
    Assignment,
    GradeDecision,
    Response,
    Round,
    RoundInstrument,
    SatisfactionBallots,
    SatisfactionTally,
    Veto,
)
from storage.participation import BranchCoverage, round_coverage
from surveys.categories import Audience, Category
from surveys.instruments import Instrument, get_instrument
from surveys.rules import (
    DEFAULT_COMPOSITE_WEIGHTS,
    DEFAULT_GOOD_SHARE,
    DEFAULT_POOR_SHARE,
    Composite,
    Coverage,
    Grade,
    Proposal,
    Rates,
    Standing,
    composite,
    propose_grades,
    quota_limits,
)
from surveys.scoring import SatisfactionSummary, summarize_satisfaction

DEFAULT_SMALL_GROUP_THRESHOLD = 5
SELF_EVALUATION = "self_evaluation"
SATISFACTION = "satisfaction"
SUPERIOR = "superior_scoring"
INSPECTIONS = ("inspection_village", "inspection_two_new")
_CENTS = Decimal("0.01")


@dataclass(frozen=True)
class Decision:
    """The committee's word on a branch's grade, as stored in GradeDecision."""

    proposed_grade: Grade
    final_grade: Grade | None
    locked: bool
    reason: str | None


@dataclass(frozen=True)
class BranchTally:
    """Everything known about one branch in a round, as far as privacy allows."""

    org_id: int
    name: str
    category: Category
    members_only: bool
    coverage: dict[Audience, Coverage]
    ballots: int
    small_group: bool  # ballots < threshold: no breakdown (rates, score, distribution are None)
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
    composite: Composite
    grading_score: Decimal | None  # superior score when scored, else the composite
    vetoed: bool
    vetoes: list[str]
    proposal: Proposal | None
    decision: Decision | None

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
    """The tallies of the branches asked for, and the quota limits of the whole round."""

    round_id: int
    branches: list[BranchTally]
    max_good: int
    min_poor: int
    threshold: int
    graded: int = 0  # branches of the round with a grading score (the quota base)
    weights: dict[str, Decimal] = field(default_factory=dict)

    def branch(self, org_id: int) -> BranchTally | None:
        """The tally of one branch, if it is in this result."""
        return next((b for b in self.branches if b.org_id == org_id), None)


# --- Options -----------------------------------------------------------------------------


def _decimal(value: Any) -> Decimal:
    """A JSON number or string as an exact Decimal."""
    return Decimal(str(value))


def round_weights(options: Mapping[str, Any]) -> dict[str, Decimal]:
    """Composite weights of the round (``options["weights"]``), defaults for the rest."""
    weights = dict(DEFAULT_COMPOSITE_WEIGHTS)
    for name, value in (options.get("weights") or {}).items():
        if name not in weights:
            raise ValueError(f"unknown composite part in round weights: {name!r}")
        weights[name] = _decimal(value)
    return weights


def small_group_threshold(options: Mapping[str, Any]) -> int:
    """Fewest ballots for which a breakdown is shown (default 5)."""
    return int(options.get("small_group_threshold", DEFAULT_SMALL_GROUP_THRESHOLD))


def quota_shares(options: Mapping[str, Any]) -> tuple[Decimal, Decimal]:
    """(good_share, poor_share) of the round."""
    good = _decimal(options.get("good_share", DEFAULT_GOOD_SHARE))
    poor = _decimal(options.get("poor_share", DEFAULT_POOR_SHARE))
    return good, poor


# --- Grouped reads (one query each, for the whole round) ----------------------------------


def _cents(value: Any) -> Decimal:
    """A database sum (Decimal, or float on SQLite) as a two-place Decimal."""
    return _decimal(value).quantize(_CENTS, rounding=ROUND_HALF_UP)


def _mean(total: Any, count: int) -> Decimal:
    """total / count, two places half up, as rules.mean does."""
    return (_cents(total) / count).quantize(_CENTS, rounding=ROUND_HALF_UP)


def _round_org_ids(session: Session, round_id: int) -> list[int]:
    """Branches taking part in the round: those with an assignment in it."""
    rows = session.exec(
        select(Assignment.org_id).where(Assignment.round_id == round_id).distinct()
    ).all()
    return sorted(int(org_id) for org_id in rows)


def _ballots(session: Session, round_id: int) -> dict[int, int]:
    rows = session.exec(
        select(SatisfactionBallots.org_id, SatisfactionBallots.ballots).where(
            SatisfactionBallots.round_id == round_id
        )
    ).all()
    return {int(org_id): int(ballots) for org_id, ballots in rows}


def _tallies(session: Session, round_id: int) -> dict[int, dict[tuple[str, str], int]]:
    rows = session.exec(
        select(
            SatisfactionTally.org_id,
            SatisfactionTally.item_id,
            SatisfactionTally.option_id,
            SatisfactionTally.count,
        ).where(SatisfactionTally.round_id == round_id)
    ).all()
    tallies: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    for org_id, item_id, option_id, count in rows:
        tallies[int(org_id)][(item_id, option_id)] = int(count)
    return tallies


@dataclass(frozen=True)
class _Totals:
    """Sum and count of one instrument's response totals for one branch."""

    total: Any
    count: int

    @property
    def mean(self) -> Decimal | None:
        return _mean(self.total, self.count) if self.count else None


def _response_totals(session: Session, round_id: int) -> dict[tuple[int, str], _Totals]:
    """(org, instrument) → sum and number of named response totals."""
    rows = session.exec(
        select(Response.org_id, Response.instrument_id, func.sum(Response.total), func.count())
        .where(Response.round_id == round_id, Response.total.is_not(None))  # type: ignore[union-attr]
        .group_by(Response.org_id, Response.instrument_id)
    ).all()
    return {
        (int(org_id), instrument_id): _Totals(total, int(count))
        for org_id, instrument_id, total, count in rows
    }


def _answer_sums(
    session: Session, round_id: int, instrument_ids: Collection[str], by_item: bool
) -> dict[int, dict[str, Any]]:
    """org → (item or section) → sum of answer scores, over the given instruments."""
    key = Answer.item_id if by_item else Answer.section_id
    rows = session.exec(
        select(Response.org_id, key, func.sum(Answer.score))
        .join(Response, Response.id == Answer.response_id)  # type: ignore[arg-type]
        .where(
            Response.round_id == round_id,
            Response.instrument_id.in_(list(instrument_ids)),  # type: ignore[attr-defined]
            Answer.score.is_not(None),  # type: ignore[union-attr]
        )
        .group_by(Response.org_id, key)
    ).all()
    sums: dict[int, dict[str, Any]] = defaultdict(dict)
    for org_id, name, total in rows:
        sums[int(org_id)][name] = total
    return sums


def _vetoes(session: Session, round_id: int) -> dict[int, list[str]]:
    rows = session.exec(
        select(Veto.org_id, Veto.condition).where(Veto.round_id == round_id).order_by(Veto.id)
    ).all()
    vetoes: dict[int, list[str]] = defaultdict(list)
    for org_id, condition in rows:
        vetoes[int(org_id)].append(condition)
    return vetoes


def _decisions(session: Session, round_id: int) -> dict[int, Decision]:
    rows = session.exec(select(GradeDecision).where(GradeDecision.round_id == round_id)).all()
    return {
        row.org_id: Decision(
            proposed_grade=Grade(row.proposed_grade),
            final_grade=Grade(row.final_grade) if row.final_grade else None,
            locked=row.locked,
            reason=row.reason,
        )
        for row in rows
    }


def satisfaction_instrument(session: Session, round_id: int) -> Instrument:
    """The satisfaction form version the round pinned."""
    pin = session.get(RoundInstrument, (round_id, SATISFACTION))
    return get_instrument(SATISFACTION, pin.version if pin is not None else None)


# --- Assembly ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RoundData:
    """Every grouped row of the round, read once."""

    coverage: dict[int, BranchCoverage]
    ballots: dict[int, int]
    tallies: dict[int, dict[tuple[str, str], int]]
    totals: dict[tuple[int, str], _Totals]
    self_items: dict[int, dict[str, Any]]
    inspection_sections: dict[int, dict[str, Any]]
    vetoes: dict[int, list[str]]
    decisions: dict[int, Decision]
    instrument: Instrument


def _read_round(session: Session, round_id: int) -> _RoundData:
    org_ids = _round_org_ids(session, round_id)
    return _RoundData(
        coverage=round_coverage(session, round_id=round_id, org_ids=org_ids),
        ballots=_ballots(session, round_id),
        tallies=_tallies(session, round_id),
        totals=_response_totals(session, round_id),
        self_items=_answer_sums(session, round_id, [SELF_EVALUATION], by_item=True),
        inspection_sections=_answer_sums(session, round_id, INSPECTIONS, by_item=False),
        vetoes=_vetoes(session, round_id),
        decisions=_decisions(session, round_id),
        instrument=satisfaction_instrument(session, round_id),
    )


def _inspection_totals(data: _RoundData, org_id: int) -> _Totals:
    """Both inspection sheets together: a branch is inspected with the one of its category."""
    parts = [data.totals.get((org_id, i)) for i in INSPECTIONS]
    present = [p for p in parts if p is not None]
    return _Totals(
        sum((_cents(p.total) for p in present), Decimal(0)), sum(p.count for p in present)
    )


def _means(sums: Mapping[str, Any], count: int) -> dict[str, Decimal]:
    return {name: _mean(total, count) for name, total in sums.items()} if count else {}


@dataclass(frozen=True)
class _Partial:
    """A branch before the round-wide proposal is known."""

    values: dict[str, Any]
    grading_score: Decimal | None
    vetoed: bool


def _partial(
    data: _RoundData, org_id: int, weights: Mapping[str, Decimal], threshold: int
) -> _Partial:
    cov = data.coverage[org_id]
    ballots = data.ballots.get(org_id, 0)
    small = ballots < threshold
    summary: SatisfactionSummary | None = None
    if not small:
        summary = summarize_satisfaction(data.instrument, ballots, data.tallies.get(org_id, {}))
    self_totals = data.totals.get((org_id, SELF_EVALUATION), _Totals(0, 0))
    inspection_totals = _inspection_totals(data, org_id)
    superior_totals = data.totals.get((org_id, SUPERIOR), _Totals(0, 0))
    satisfaction = summary.score if summary is not None else None
    mix = composite(
        {
            "self_evaluation": self_totals.mean,
            "satisfaction": satisfaction,
            "inspection": inspection_totals.mean,
        },
        weights,
    )
    superior = superior_totals.mean
    vetoes = data.vetoes.get(org_id, [])
    values = {
        "org_id": org_id,
        "name": cov.name,
        "category": cov.category,
        "members_only": cov.members_only,
        "coverage": cov.coverage,
        "ballots": ballots,
        "small_group": small,
        "rates": summary.rates if summary is not None else None,
        "satisfaction_score": satisfaction,
        "distribution": summary.distribution if summary is not None else None,
        "self_evaluation": self_totals.mean,
        "self_evaluation_by_item": _means(data.self_items.get(org_id, {}), self_totals.count),
        "self_evaluators": self_totals.count,
        "inspection": inspection_totals.mean,
        "inspection_by_section": _means(
            data.inspection_sections.get(org_id, {}), inspection_totals.count
        ),
        "inspectors": inspection_totals.count,
        "superior": superior,
        "superior_scorers": superior_totals.count,
        "composite": mix,
        "grading_score": superior if superior is not None else mix.score,
        "vetoed": bool(vetoes),
        "vetoes": list(vetoes),
        "decision": data.decisions.get(org_id),
    }
    return _Partial(values, values["grading_score"], bool(vetoes))


def _sort_key(branch: BranchTally) -> tuple[int, Decimal, str, int]:
    score = branch.grading_score
    return (score is None, -(score or Decimal(0)), branch.name, branch.org_id)


def round_tally(
    session: Session, *, round_id: int, org_ids: Collection[int] | None = None
) -> RoundTally:
    """The live tally of a round; quotas always over every graded branch of the round.

    ``org_ids`` only filters the branches returned (a secretary sees their branch's
    proposal in the context of the whole township).
    """
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise LookupError(f"round {round_id}")
    options = round_.options or {}
    weights = round_weights(options)
    threshold = small_group_threshold(options)
    good_share, poor_share = quota_shares(options)
    data = _read_round(session, round_id)
    partials = {org_id: _partial(data, org_id, weights, threshold) for org_id in data.coverage}
    standings = [
        Standing(org_id, p.grading_score, p.vetoed)
        for org_id, p in partials.items()
        if p.grading_score is not None
    ]
    proposals = {p.org_id: p for p in propose_grades(standings, good_share, poor_share)}
    max_good, min_poor = quota_limits(len(standings), good_share, poor_share)
    wanted = set(partials) if org_ids is None else set(org_ids) & set(partials)
    branches = sorted(
        (
            BranchTally(**partials[org_id].values, proposal=proposals.get(org_id))
            for org_id in wanted
        ),
        key=_sort_key,
    )
    return RoundTally(
        round_id=round_id,
        branches=branches,
        max_good=max_good,
        min_poor=min_poor,
        threshold=threshold,
        graded=len(standings),
        weights=weights,
    )
