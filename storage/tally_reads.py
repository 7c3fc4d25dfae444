"""The grouped reads behind ``storage.tallies``: one query each, for a whole round.

Split from ``storage.tallies`` to keep each module small. Every value stays unrounded
(docs/rules.md §5.1): the reports round for display only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, and_, case, false, func, literal, or_, select
from sqlmodel import Session

from storage.models import (
    Answer,
    GradeDecision,
    Response,
    ResponseSummary,
    RoundInstrument,
    SatisfactionBallots,
    SatisfactionTally,
    Veto,
)
from storage.summary import SUM_COLUMNS
from surveys.instruments import Instrument, get_instrument
from surveys.memo import memo
from surveys.rules import Grade, Rates, rates_from_counts

SELF_EVALUATION = "self_evaluation"
SATISFACTION = "satisfaction"
SUPERIOR = "superior_scoring"


@dataclass(frozen=True)
class Decision:
    """The committee's word on a branch's grade, as stored in GradeDecision."""

    proposed_grade: Grade
    final_grade: Grade | None
    locked: bool
    reason: str | None


def _decimal(value: Any) -> Decimal:
    """A JSON number or string as an exact Decimal (a Decimal as it is: str() keeps it)."""
    return value if type(value) is Decimal else Decimal(str(value))


# --- Grouped reads (one query each, for the whole round) ----------------------------------


_PLACES = Decimal("0.0001")


def exact(value: Any) -> Decimal:
    """A database sum of two-place scores (Decimal, or float on SQLite) as an exact Decimal.

    The stored scores have two places, so a float sum is rounded back to the cents it
    was made of; nothing else is rounded (docs/rules.md §5.1: round for display only).
    """
    return _decimal(value).quantize(_PLACES)


def mean_of(total: Any, count: int) -> Decimal:
    """total / count, UNROUNDED (docs/rules.md §5.1): 89.99 and 90 give 89.995."""
    return exact(total) / count


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def _rows(session: Session, statement: Any) -> Sequence[Any]:
    """Run a Core statement on the session's connection: plain tuples, no ORM overhead."""
    return session.connection().execute(statement).all()


def tallies(
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
class SatisfactionSums:
    """One branch's counters summed in SQL: what the three rates and the score need."""

    satisfied: int = 0
    satisfaction_answers: int = 0
    aware: int = 0
    awareness_answers: int = 0
    participating: int = 0
    participation_answers: int = 0
    weighted: Any = 0  # Σ count × option value over the valued satisfaction answers
    valued: int = 0  # answers with an option value

    @memo  # asked for by the score, the proposal and the view of each branch
    def rates(self) -> Rates:
        return rates_from_counts(
            self.satisfied,
            self.satisfaction_answers,
            self.aware,
            self.awareness_answers,
            self.participating,
            self.participation_answers,
        )

    @memo
    def score(self) -> Decimal | None:
        """Mean option value, unrounded (docs/rules.md §5.1)."""
        if not self.valued:
            return None
        return _decimal(self.weighted) / self.valued


def _pair(table: Table, item_id: str, option_id: str) -> Any:
    return and_(table.c.item_id == item_id, table.c.option_id == option_id)


def _counted(table: Table, condition: Any, value: Any = None) -> Any:
    """SUM(count) (or SUM(count × value)) over the counters matching the condition."""
    amount = table.c["count"] if value is None else table.c["count"] * value
    return func.coalesce(func.sum(case((condition, amount), else_=0)), 0)


def _only(column: Any, org_ids: Collection[int] | None) -> list[Any]:
    """A WHERE clause keeping the given branches (none: every branch)."""
    return [] if org_ids is None else [column.in_(list(org_ids))]


def summary_rows(
    session: Session, round_id: int, org_ids: Collection[int] | None
) -> dict[int, tuple[Any, ...]]:
    """Per branch, its summary row as stored: ballots, then the eight satisfaction sums.

    Plain values, no objects: a county tally compares them with the last tally's
    (storage.tally_memo) and builds ``SatisfactionSums`` only for a branch that changed.
    """
    table = _table(SatisfactionBallots)
    rows = _rows(
        session,
        select(table.c.org_id, table.c.ballots, *(table.c[name] for name in SUM_COLUMNS)).where(
            table.c.round_id == round_id, *_only(table.c.org_id, org_ids)
        ),
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def sums_of(row: tuple[Any, ...] | None) -> SatisfactionSums:
    """The satisfaction sums of one ``summary_rows`` row (none: no ballot yet)."""
    if row is None:
        return _NO_SUMS
    return SatisfactionSums(*(int(v) for v in row[1:7]), row[7], int(row[8]))


def summaries(
    session: Session, round_id: int, org_ids: Collection[int] | None
) -> tuple[dict[int, int], dict[int, SatisfactionSums]]:
    """Ballots and satisfaction sums per branch: one summary row each (storage.summary)."""
    rows = summary_rows(session, round_id, org_ids)
    return {o: int(row[0]) for o, row in rows.items()}, {o: sums_of(r) for o, r in rows.items()}


def counter_sums(
    session: Session, round_id: int, instrument: Instrument
) -> dict[int, SatisfactionSums]:
    """Per branch, the same sums straight from the counters, in SQL (a recomputation).

    The tally reads the summary instead; the tests hold the summary to this.
    """
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
        int(row[0]): SatisfactionSums(*(int(v) for v in row[1:7]), row[7], int(row[8]))
        for row in rows
    }


@dataclass(frozen=True)
class Totals:
    """Sum and count of one instrument's response totals for one branch."""

    total: Any
    count: int

    @memo  # computed once, however many parts and views ask
    def mean(self) -> Decimal | None:
        return mean_of(self.total, self.count) if self.count else None


def response_totals(
    session: Session, round_id: int, org_ids: Collection[int] | None
) -> dict[tuple[int, str], Totals]:
    """(org, instrument) → sum and number of named response totals (storage.summary)."""
    table = _table(ResponseSummary)
    rows = _rows(
        session,
        select(table.c.org_id, table.c.instrument_id, table.c.total, table.c.responses).where(
            table.c.round_id == round_id, table.c.responses > 0, *_only(table.c.org_id, org_ids)
        ),
    )
    return {
        (int(org_id), instrument_id): Totals(total, int(count))
        for org_id, instrument_id, total, count in rows
    }


def total_rows(
    session: Session, round_id: int, org_ids: Collection[int] | None, instruments: Sequence[str]
) -> dict[int, tuple[Any, ...]]:
    """Per branch, one row: (sum, number) of its named totals for each instrument in turn.

    Pivoted in SQL (one row per branch instead of one per instrument), plain values: the
    same use as ``summary_rows``.
    """
    table = _table(ResponseSummary)
    columns = []
    for instrument_id in instruments:
        mine = table.c.instrument_id == instrument_id
        columns.append(func.sum(case((mine, table.c.total))))
        columns.append(func.sum(case((mine, table.c.responses), else_=0)))
    rows = _rows(
        session,
        select(table.c.org_id, *columns)
        .where(table.c.round_id == round_id, table.c.responses > 0, *_only(table.c.org_id, org_ids))
        .group_by(table.c.org_id),
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def totals_of(row: tuple[Any, ...] | None, index: int) -> Totals:
    """The totals of the ``index``-th instrument of one ``total_rows`` row."""
    if row is None or not row[2 * index + 1]:
        return _NO_TOTALS
    return Totals(row[2 * index], int(row[2 * index + 1]))


_NO_TOTALS = Totals(0, 0)
_NO_SUMS = SatisfactionSums()


def _round_of(responses: Table, round_id: int, org_ids: Collection[int] | None) -> Any:
    """The round condition; for given branches written so that the branch index leads.

    Without statistics SQLite searches the round's index for ``round_id = ?`` before
    ``org_id IN (?)``: every response of the round and its answers for one branch.
    ``round_id + 0`` keeps the same rows but is no index term (PostgreSQL has statistics
    and picks the branch's index either way).
    """
    if org_ids is None:
        return responses.c.round_id == round_id
    return responses.c.round_id + 0 == round_id


def answer_sums(
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
            _round_of(responses, round_id, org_ids),
            responses.c.instrument_id.in_(list(instrument_ids)),
            answers.c.score.is_not(None),
            *_only(responses.c.org_id, org_ids),
        )
        .group_by(responses.c.org_id, key),
    )
    sums: dict[int, dict[str, Any]] = defaultdict(dict)
    for org_id, name, total in rows:
        sums[int(org_id)][name] = total
    return sums


def vetoes(
    session: Session, round_id: int, org_ids: Collection[int] | None
) -> dict[int, list[str]]:
    table = _table(Veto)
    rows = _rows(
        session,
        select(table.c.org_id, table.c.condition)
        .where(table.c.round_id == round_id, *_only(table.c.org_id, org_ids))
        .order_by(table.c.id),
    )
    vetoes: dict[int, list[str]] = defaultdict(list)
    for org_id, condition in rows:
        vetoes[int(org_id)].append(condition)
    return vetoes


def decisions(
    session: Session, round_id: int, org_ids: Collection[int] | None
) -> dict[int, Decision]:
    table = _table(GradeDecision)
    rows = _rows(
        session,
        select(
            table.c.org_id,
            table.c.proposed_grade,
            table.c.final_grade,
            table.c.locked,
            table.c.reason,
        ).where(table.c.round_id == round_id, *_only(table.c.org_id, org_ids)),
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
