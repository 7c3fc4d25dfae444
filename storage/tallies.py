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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Table, and_, case, false, func, literal, or_, select
from sqlmodel import Session

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
from surveys.categories import INSPECTION_SHEETS, Audience, Category
from surveys.instruments import Instrument, get_instrument
from surveys.options import RoundOptions
from surveys.rules import (
    Composite,
    Coverage,
    Grade,
    Proposal,
    Rates,
    Standing,
    composite,
    propose_grades,
    quota_limits,
    rates_from_counts,
)
from surveys.scoring import SatisfactionSummary, summarize_satisfaction

SELF_EVALUATION = "self_evaluation"
SATISFACTION = "satisfaction"
SUPERIOR = "superior_scoring"
INSPECTIONS = tuple(dict.fromkeys(INSPECTION_SHEETS.values()))  # each sheet once
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


def _decimal(value: Any) -> Decimal:
    """A JSON number or string as an exact Decimal."""
    return Decimal(str(value))


# --- Grouped reads (one query each, for the whole round) ----------------------------------


def _cents(value: Any) -> Decimal:
    """A database sum (Decimal, or float on SQLite) as a two-place Decimal."""
    return _decimal(value).quantize(_CENTS, rounding=ROUND_HALF_UP)


def _mean(total: Any, count: int) -> Decimal:
    """total / count, two places half up, as rules.mean does."""
    return (_cents(total) / count).quantize(_CENTS, rounding=ROUND_HALF_UP)


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def _rows(session: Session, statement: Any) -> Sequence[Any]:
    """Run a Core statement on the session's connection: plain tuples, no ORM overhead."""
    return session.connection().execute(statement).all()


def _round_org_ids(session: Session, round_id: int) -> list[int]:
    """Branches taking part in the round: those with an assignment in it."""
    table = _table(Assignment)
    rows = _rows(session, select(table.c.org_id).where(table.c.round_id == round_id).distinct())
    return sorted(int(org_id) for (org_id,) in rows)


def _ballots(session: Session, round_id: int) -> dict[int, int]:
    table = _table(SatisfactionBallots)
    rows = _rows(
        session, select(table.c.org_id, table.c.ballots).where(table.c.round_id == round_id)
    )
    return {int(org_id): int(ballots) for org_id, ballots in rows}


def _tallies(
    session: Session, round_id: int, org_ids: Collection[int] | None
) -> dict[int, dict[tuple[str, str], int]]:
    """The counters per (question, option) of the given branches (all when None)."""
    table = _table(SatisfactionTally)
    statement = select(table.c.org_id, table.c.item_id, table.c.option_id, table.c["count"])
    statement = statement.where(table.c.round_id == round_id)
    if org_ids is not None:
        statement = statement.where(table.c.org_id.in_(list(org_ids)))
    rows = _rows(session, statement)
    tallies: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    for org_id, item_id, option_id, count in rows:
        tallies[org_id][(item_id, option_id)] = count
    return tallies


@dataclass(frozen=True)
class _Satisfaction:
    """One branch's counters summed in SQL: what the three rates and the score need."""

    satisfied: int = 0
    satisfaction_answers: int = 0
    aware: int = 0
    awareness_answers: int = 0
    participating: int = 0
    participation_answers: int = 0
    weighted: Any = 0  # Σ count × option value over the valued satisfaction answers
    valued: int = 0  # answers with an option value

    @property
    def rates(self) -> Rates:
        return rates_from_counts(
            self.satisfied,
            self.satisfaction_answers,
            self.aware,
            self.awareness_answers,
            self.participating,
            self.participation_answers,
        )

    @property
    def score(self) -> Decimal | None:
        """Mean option value, two places half up, as surveys.rules.satisfaction_score."""
        if not self.valued:
            return None
        return (_decimal(self.weighted) / self.valued).quantize(_CENTS, rounding=ROUND_HALF_UP)


def _pair(table: Table, item_id: str, option_id: str) -> Any:
    return and_(table.c.item_id == item_id, table.c.option_id == option_id)


def _counted(table: Table, condition: Any, value: Any = None) -> Any:
    """SUM(count) (or SUM(count × value)) over the counters matching the condition."""
    amount = table.c["count"] if value is None else table.c["count"] * value
    return func.coalesce(func.sum(case((condition, amount), else_=0)), 0)


def _satisfaction_sums(
    session: Session, round_id: int, instrument: Instrument
) -> dict[int, _Satisfaction]:
    """Per branch, the positive and all answers of each rate and the valued sum, in SQL."""
    table = _table(SatisfactionTally)
    columns = []
    for rate in ("satisfaction", "awareness", "participation"):
        items = [item for item in instrument.items if item.rate == rate]
        positive = [_pair(table, i.id, o.id) for i in items for o in i.options if o.positive]
        columns.append(_counted(table, or_(false(), *positive)))
        columns.append(_counted(table, table.c.item_id.in_([i.id for i in items] or [""])))
    valued = [
        (item.id, option.id, option.value)
        for item in instrument.items
        if item.rate == "satisfaction"
        for option in item.options
        if option.value is not None
    ]
    weighted = [_counted(table, _pair(table, i, o), literal(v)) for i, o, v in valued]
    columns.append(sum(weighted[1:], weighted[0]) if weighted else literal(0))
    columns.append(_counted(table, or_(false(), *(_pair(table, i, o) for i, o, _ in valued))))
    rows = _rows(
        session,
        select(table.c.org_id, *columns)
        .where(table.c.round_id == round_id)
        .group_by(table.c.org_id),
    )
    return {
        int(row[0]): _Satisfaction(*(int(v) for v in row[1:7]), row[7], int(row[8])) for row in rows
    }


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
    table = _table(Response)
    rows = _rows(
        session,
        select(table.c.org_id, table.c.instrument_id, func.sum(table.c.total), func.count())
        .where(table.c.round_id == round_id, table.c.total.is_not(None))
        .group_by(table.c.org_id, table.c.instrument_id),
    )
    return {
        (int(org_id), instrument_id): _Totals(total, int(count))
        for org_id, instrument_id, total, count in rows
    }


def _answer_sums(
    session: Session,
    round_id: int,
    instrument_ids: Collection[str],
    by_item: bool,
    org_ids: Collection[int] | None,
) -> dict[int, dict[str, Any]]:
    """org → (item or section) → sum of answer scores, over the given instruments."""
    answers, responses = _table(Answer), _table(Response)
    key = answers.c.item_id if by_item else answers.c.section_id
    rows = _rows(
        session,
        select(responses.c.org_id, key, func.sum(answers.c.score))
        .join(responses, responses.c.id == answers.c.response_id)
        .where(
            responses.c.round_id == round_id,
            responses.c.instrument_id.in_(list(instrument_ids)),
            answers.c.score.is_not(None),
            *([responses.c.org_id.in_(list(org_ids))] if org_ids is not None else []),
        )
        .group_by(responses.c.org_id, key),
    )
    sums: dict[int, dict[str, Any]] = defaultdict(dict)
    for org_id, name, total in rows:
        sums[int(org_id)][name] = total
    return sums


def _vetoes(session: Session, round_id: int) -> dict[int, list[str]]:
    table = _table(Veto)
    rows = _rows(
        session,
        select(table.c.org_id, table.c.condition)
        .where(table.c.round_id == round_id)
        .order_by(table.c.id),
    )
    vetoes: dict[int, list[str]] = defaultdict(list)
    for org_id, condition in rows:
        vetoes[int(org_id)].append(condition)
    return vetoes


def _decisions(session: Session, round_id: int) -> dict[int, Decision]:
    table = _table(GradeDecision)
    rows = _rows(
        session,
        select(
            table.c.org_id,
            table.c.proposed_grade,
            table.c.final_grade,
            table.c.locked,
            table.c.reason,
        ).where(table.c.round_id == round_id),
    )
    return {
        int(org_id): Decision(
            proposed_grade=Grade(proposed),
            final_grade=Grade(final) if final else None,
            locked=bool(locked),
            reason=reason,
        )
        for org_id, proposed, final, locked, reason in rows
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
    satisfaction: dict[int, _Satisfaction]
    tallies: dict[int, dict[tuple[str, str], int]]
    totals: dict[tuple[int, str], _Totals]
    self_items: dict[int, dict[str, Any]]
    inspection_sections: dict[int, dict[str, Any]]
    vetoes: dict[int, list[str]]
    decisions: dict[int, Decision]
    instrument: Instrument


def _read_round(
    session: Session, round_id: int, wanted: Collection[int] | None, distribution: bool
) -> _RoundData:
    """Everything the quotas need for every branch; the details only where wanted."""
    org_ids = _round_org_ids(session, round_id)
    instrument = satisfaction_instrument(session, round_id)
    return _RoundData(
        coverage=round_coverage(session, round_id=round_id, org_ids=org_ids),
        ballots=_ballots(session, round_id),
        satisfaction=_satisfaction_sums(session, round_id, instrument),
        tallies=_tallies(session, round_id, wanted) if distribution else {},
        totals=_response_totals(session, round_id),
        self_items=_answer_sums(session, round_id, [SELF_EVALUATION], True, wanted),
        inspection_sections=_answer_sums(session, round_id, INSPECTIONS, False, wanted),
        vetoes=_vetoes(session, round_id),
        decisions=_decisions(session, round_id),
        instrument=instrument,
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
class _Scores:
    """What the round-wide proposal needs of one branch."""

    satisfaction: _Satisfaction | None  # None for a small group: nothing may be shown
    self_totals: _Totals
    inspection_totals: _Totals
    superior_totals: _Totals
    composite: Composite
    grading_score: Decimal | None
    vetoes: list[str]


def _scores(
    data: _RoundData, org_id: int, weights: Mapping[str, Decimal], threshold: int
) -> _Scores:
    small = data.ballots.get(org_id, 0) < threshold
    satisfaction = None if small else data.satisfaction.get(org_id, _Satisfaction())
    self_totals = data.totals.get((org_id, SELF_EVALUATION), _Totals(0, 0))
    inspection_totals = _inspection_totals(data, org_id)
    superior_totals = data.totals.get((org_id, SUPERIOR), _Totals(0, 0))
    mix = composite(
        {
            "self_evaluation": self_totals.mean,
            "satisfaction": satisfaction.score if satisfaction is not None else None,
            "inspection": inspection_totals.mean,
        },
        weights,
    )
    superior = superior_totals.mean
    return _Scores(
        satisfaction=satisfaction,
        self_totals=self_totals,
        inspection_totals=inspection_totals,
        superior_totals=superior_totals,
        composite=mix,
        grading_score=superior if superior is not None else mix.score,
        vetoes=data.vetoes.get(org_id, []),
    )


def _distribution(data: _RoundData, org_id: int, ballots: int) -> dict[str, dict[str, int]]:
    """Counts per question and option, zeros included (checked against the instrument)."""
    tallies = data.tallies.get(org_id, {})
    return summarize_satisfaction(data.instrument, ballots, tallies).distribution


def _branch(
    data: _RoundData,
    org_id: int,
    scores: _Scores,
    proposal: Proposal | None,
    distribution: bool,
) -> BranchTally:
    cov = data.coverage[org_id]
    ballots = data.ballots.get(org_id, 0)
    satisfaction = scores.satisfaction
    shown = satisfaction is not None
    return BranchTally(
        org_id=org_id,
        name=cov.name,
        category=cov.category,
        members_only=cov.members_only,
        coverage=cov.coverage,
        ballots=ballots,
        small_group=not shown,
        rates=satisfaction.rates if satisfaction is not None else None,
        satisfaction_score=satisfaction.score if satisfaction is not None else None,
        distribution=_distribution(data, org_id, ballots) if shown and distribution else None,
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
        composite=scores.composite,
        grading_score=scores.grading_score,
        vetoed=bool(scores.vetoes),
        vetoes=list(scores.vetoes),
        proposal=proposal,
        decision=data.decisions.get(org_id),
    )


def _sort_key(branch: BranchTally) -> tuple[int, Decimal, str, int]:
    score = branch.grading_score
    return (score is None, -(score or Decimal(0)), branch.name, branch.org_id)


def round_tally(
    session: Session,
    *,
    round_id: int,
    org_ids: Collection[int] | None = None,
    distribution: bool = False,
) -> RoundTally:
    """The live tally of a round; quotas always over every graded branch of the round.

    ``org_ids`` only filters the branches returned (a secretary sees their branch's
    proposal in the context of the whole township). ``distribution`` also loads the
    counts per question and option (for the announcement and the export).
    """
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise LookupError(f"round {round_id}")
    options = RoundOptions.from_json(round_.options)
    weights = options.composite_weights
    threshold = options.small_group_threshold
    good_share, poor_share = options.good_share, options.poor_share
    data = _read_round(session, round_id, org_ids, distribution)
    scores = {org_id: _scores(data, org_id, weights, threshold) for org_id in data.coverage}
    standings = [
        Standing(org_id, s.grading_score, bool(s.vetoes))
        for org_id, s in scores.items()
        if s.grading_score is not None
    ]
    proposals = {p.org_id: p for p in propose_grades(standings, good_share, poor_share)}
    max_good, min_poor = quota_limits(len(standings), good_share, poor_share)
    wanted = set(scores) if org_ids is None else set(org_ids) & set(scores)
    branches = sorted(
        (
            _branch(data, org_id, scores[org_id], proposals.get(org_id), distribution)
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


def satisfaction_by_branch(
    session: Session, *, round_id: int, threshold: int
) -> dict[int, tuple[SatisfactionSummary | None, int]]:
    """Per branch: (summary, or None below the small-group threshold, as here; ballots)."""
    ballots = _ballots(session, round_id)
    shown = {org_id for org_id, count in ballots.items() if count >= threshold}
    tallies = _tallies(session, round_id, shown) if shown else {}
    form = satisfaction_instrument(session, round_id) if shown else None
    return {
        o: (summarize_satisfaction(form, n, tallies[o]) if form and o in shown else None, n)
        for o, n in ballots.items()
    }
