"""Per-branch summaries kept where the counts change, so a tally reads one row per branch.

Two summaries (tables in storage.ballot_tables):

* the satisfaction sums on ``SatisfactionBallots`` — positive and all answers of each rate,
  Σ count × value and the number of valued answers — added to by the FOLD (storage.ballots),
  in the same statement as the ballot count, from the very counts it adds to the counters.
  Never in a voter's transaction: a summary row carries no person and no time, and moves
  only when the counters move (docs/anonymity.md);
* ``ResponseSummary``: sum and number of the scored named responses per branch and
  instrument, added to where a named response is stored (storage.responses).

``rebuild`` recomputes both from the raw rows (counters, responses): the tests compare the
kept summaries with it, and fixtures that write counters directly call it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from storage.ballot_tables import ResponseSummary, SatisfactionBallots, SatisfactionTally
from storage.models import Response, RoundInstrument
from surveys.instruments import Instrument, get_instrument

RATES = (
    ("satisfaction", "satisfied", "satisfaction_answers"),
    ("awareness", "aware", "awareness_answers"),
    ("participation", "participating", "participation_answers"),
)
SUM_COLUMNS = (
    "satisfied",
    "satisfaction_answers",
    "aware",
    "awareness_answers",
    "participating",
    "participation_answers",
    "weighted",
    "valued",
)

Sums = dict[str, Any]  # column → int (Decimal for "weighted")


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def satisfaction_sums_of(instrument: Instrument, counts: Mapping[tuple[str, str], int]) -> Sums:
    """The summary columns for these counts per (question, option), by the form's rules.

    The same rule as the SQL over the counters (storage.tally_reads.counter_sums): an
    answer counts for its question's rate; positive and valued options as the form says.
    """
    sums: Sums = dict.fromkeys(SUM_COLUMNS, 0)
    sums["weighted"] = Decimal(0)
    columns = {rate: (positive, answers) for rate, positive, answers in RATES}
    items = {item.id: item for item in instrument.items}
    for (item_id, option_id), count in counts.items():
        item = items.get(item_id)
        if item is None or item.rate not in columns or not count:
            continue
        positive, answers = columns[item.rate]
        sums[answers] += count
        option = next((o for o in item.options if o.id == option_id), None)
        if option is None:
            continue
        if option.positive:
            sums[positive] += count
        if item.rate == "satisfaction" and option.value is not None:
            sums["weighted"] += count * Decimal(str(option.value))
            sums["valued"] += count
    return sums


def add_ballots(session: Session, key: Mapping[str, int], ballots: int, sums: Sums) -> None:
    """Add folded ballots and their sums to the branch's row, in one statement (the fold)."""
    table = SatisfactionBallots.__table__  # type: ignore[attr-defined]
    added = {"ballots": ballots, **sums}
    session.execute(
        _insert(session)(table)
        .values(**key, **added)
        .on_conflict_do_update(
            index_elements=["round_id", "org_id"],
            set_={name: table.c[name] + value for name, value in added.items()},
        )
    )


def add_response(session: Session, response: Response) -> None:
    """Count one stored named response in its branch's summary (unscored ones count nowhere)."""
    if response.total is None:
        return
    table = ResponseSummary.__table__  # type: ignore[attr-defined]
    key = {
        "round_id": response.round_id,
        "org_id": response.org_id,
        "instrument_id": response.instrument_id,
    }
    total = response.total
    session.execute(
        _insert(session)(table)
        .values(**key, total=total, responses=1)
        .on_conflict_do_update(
            index_elements=list(key),
            set_={"total": table.c.total + total, "responses": table.c.responses + 1},
        )
    )


# --- Recomputing from the raw rows ------------------------------------------------------------


def _satisfaction_instrument(session: Session, round_id: int) -> Instrument:
    pin = session.get(RoundInstrument, (round_id, "satisfaction"))
    return get_instrument("satisfaction", pin.version if pin is not None else None)


def counted_sums(session: Session, round_id: int) -> dict[int, Sums]:
    """Per branch, the summary recomputed from the counters of the round."""
    table = SatisfactionTally.__table__  # type: ignore[attr-defined]
    counts: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    rows = session.execute(
        select(table.c.org_id, table.c.item_id, table.c.option_id, table.c["count"]).where(
            table.c.round_id == round_id
        )
    )
    for org_id, item_id, option_id, count in rows:
        counts[int(org_id)][(item_id, option_id)] = int(count)
    instrument = _satisfaction_instrument(session, round_id)
    return {org_id: satisfaction_sums_of(instrument, c) for org_id, c in counts.items()}


def counted_responses(session: Session, round_id: int) -> dict[tuple[int, str], tuple[Any, int]]:
    """(branch, instrument) → (sum, number) of the scored responses, from the responses."""
    table = Response.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        select(table.c.org_id, table.c.instrument_id, func.sum(table.c.total), func.count())
        .where(table.c.round_id == round_id, table.c.total.is_not(None))
        .group_by(table.c.org_id, table.c.instrument_id)
    )
    return {(int(o), i): (total, int(n)) for o, i, total, n in rows}


def rebuild(session: Session, *, round_id: int) -> None:
    """Recompute both summaries of a round from the raw rows, in the caller's transaction.

    For fixtures and benches that write counters directly. The caller's transaction must
    touch no row naming a person (it writes the satisfaction summary, like a fold).
    """
    ballots = SatisfactionBallots.__table__  # type: ignore[attr-defined]
    zero = dict.fromkeys(SUM_COLUMNS, 0)
    session.execute(update(ballots).where(ballots.c.round_id == round_id).values(**zero))
    for org_id, sums in counted_sums(session, round_id).items():
        session.execute(
            update(ballots)
            .where(ballots.c.round_id == round_id, ballots.c.org_id == org_id)
            .values(**sums)
        )
    summary = ResponseSummary.__table__  # type: ignore[attr-defined]
    session.execute(delete(summary).where(summary.c.round_id == round_id))
    rows = [
        {"round_id": round_id, "org_id": o, "instrument_id": i, "total": t, "responses": n}
        for (o, i), (t, n) in counted_responses(session, round_id).items()
    ]
    if rows:
        session.execute(insert(summary), rows)
