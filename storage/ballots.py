"""The sealed ballot box of the anonymous satisfaction survey, and folding it into counters.

A submission drops its sealed ballot into the branch's box (``SatisfactionBox``) in the
voter's transaction, next to the assignment's "submitted" mark. The counters
(``SatisfactionTally``, ``SatisfactionBallots`` with the per-branch sums of storage.summary,
``SatisfactionComments``) are written only by a fold: a transaction of its own that touches
no row naming a person, so no transaction id (PostgreSQL ``xmin``), row id or order ties a
person to a choice.

A fold takes a random subset of the box and always leaves at least the small-group
threshold t in it while the satisfaction phase runs (it folds when the box holds 2t or more,
all but t of them), so the counters — and every number shown from them — move only in
steps of at least t ballots: looking before and after one person submits shows nothing.
When the phase's deadline has passed or the round closes, the rest is folded. Every
counter row of a branch is created at once in the instrument's order and every fold
rewrites them all, so neither row order nor which rows changed tells a ballot.

A fold runs right after the transaction that asked for it commits (``fold_after_commit``):
a submission, the closing of a round; the bot takes a submission's fold out of the commit
(``take_fold``) and runs it once the person has their screen (``run_fold``). The jobs' tick
calls ``fold_due`` for deadlines. When a round closes, what is no longer needed is purged
(drafts of its anonymous survey, its boxes) and the freed space scrubbed: ``VACUUM`` on
PostgreSQL, a WAL checkpoint on SQLite (whose ``secure_delete`` is on, see storage.db).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, event, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage import summary
from storage.db import is_quick, main_engine
from storage.models import (
    Assignment,
    Draft,
    Round,
    RoundInstrument,
    RoundPhase,
    SatisfactionBox,
    SatisfactionComments,
    SatisfactionTally,
)
from surveys.categories import Phase
from surveys.instruments import Instrument, get_instrument

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 5
_FOLD = "ceping.fold_after_commit"
_random = secrets.SystemRandom()

FOLDS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ceping-fold")
"""The submissions' folds, one at a time, beside the taps' worker threads: when every
branch's box fills at once (a meeting's end), folds holding the shared threads made the
taps behind them wait (PostgreSQL confirm p99 over 200 ms). A quick transaction's fold
(storage.db.quick_transaction, on the event loop's thread) is sent here too."""

Ballot = dict[str, Any]  # {"c": [[item id, option id], …], "t": [suggestion, …]}

SCRUBBED_TABLES = (
    "draft",
    "satisfaction_box",
    "satisfaction_tally",
    "satisfaction_ballots",
    "satisfaction_comments",
)


def make_ballot(choices: Iterable[tuple[str, str]], texts: Iterable[str]) -> Ballot:
    """One ballot as the box keeps it (sealed with the rest of the box)."""
    return {"c": [list(pair) for pair in choices], "t": list(texts)}


# --- Dropping a ballot (the voter's transaction) ---------------------------------------------


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


_BOX = SatisfactionBox.__table__  # type: ignore[attr-defined]
_BOX_KEY = (_BOX.c.round_id == bindparam("box_round")) & (_BOX.c.org_id == bindparam("box_org"))
# A submission's statements on the box, built once so SQLAlchemy caches their compilation:
# plain columns and Core writes, no ORM object (the box's sealed column is opened and sealed
# by its type, as before).
_READ_BOX = select(_BOX.c.ballots).where(_BOX_KEY).with_for_update()
_WRITE_BOX = update(_BOX).where(_BOX_KEY).values(ballots=bindparam("box_ballots"))


@cache
def _create_box(dialect: str) -> Any:
    """INSERT of an empty box that leaves an existing one alone, for this dialect."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_BOX)
        .values(round_id=bindparam("box_round"), org_id=bindparam("box_org"), ballots=[])
        .on_conflict_do_nothing(index_elements=["round_id", "org_id"])
    )


def _locked_box(session: Session, round_id: int, org_id: int) -> list[Ballot]:
    """The ballots in the branch's box, created empty if needed, row-locked on PostgreSQL."""
    key = {"box_round": round_id, "box_org": org_id}
    connection = session.connection()
    connection.execute(_create_box(connection.dialect.name), key)
    return list(connection.execute(_READ_BOX, key).scalar_one())


def drop_ballot(
    session: Session, *, round_id: int, org_id: int, ballot: Ballot, now: datetime
) -> None:
    """Put a ballot into its branch's box; the counters learn of it only in a later fold."""
    ballots = [*_locked_box(session, round_id, org_id), ballot]
    key = {"box_round": round_id, "box_org": org_id, "box_ballots": ballots}
    session.connection().execute(_WRITE_BOX, key)  # the whole box sealed again
    if _due(session, round_id, len(ballots), now):  # else spare the tap a transaction
        fold_after_commit(session, now=now, round_id=round_id, org_id=org_id)


_ROUND_TABLE = Round.__table__  # type: ignore[attr-defined]
_PHASE_TABLE = RoundPhase.__table__  # type: ignore[attr-defined]
# The round's status, options and satisfaction deadline in one read (plain columns).
_DUE = (
    select(_ROUND_TABLE.c.status, _ROUND_TABLE.c.options, _PHASE_TABLE.c.deadline)
    .select_from(_ROUND_TABLE)
    .outerjoin(
        _PHASE_TABLE,
        (_PHASE_TABLE.c.round_id == _ROUND_TABLE.c.id)
        & (_PHASE_TABLE.c.phase == Phase.SATISFACTION.value),
    )
    .where(_ROUND_TABLE.c.id == bindparam("round_id"))
)


def _due(session: Session, round_id: int, waiting: int, now: datetime) -> bool:
    """Whether a box of this many ballots would fold now."""
    row = session.connection().execute(_DUE, {"round_id": round_id}).first()
    if row is None or row.status == "closed":
        return True
    past_deadline = row.deadline is not None and now >= row.deadline
    return waiting >= 2 * _threshold(row.options) or past_deadline


# --- Folding (a transaction of its own) ------------------------------------------------------


def fold_after_commit(
    session: Session, *, now: datetime, round_id: int, org_id: int | None = None
) -> None:
    """Fold this round's (or only this branch's) due boxes right after the session commits.

    Asked again in the same transaction (several ballots, a close), the fold widens to cover
    every request: the branch, else the round, else every round.
    """
    pending = session.info.get(_FOLD)
    if pending is not None:
        then, then_round, then_org = pending
        now = max(now, then)
        org_id = org_id if (then_round, then_org) == (round_id, org_id) else None
        round_id = round_id if then_round == round_id else None  # type: ignore[assignment]
    session.info[_FOLD] = (now, round_id, org_id)


@dataclass(frozen=True)
class FoldRequest:
    """A fold a transaction asked for: of which round (None: all) and branch (None: all)."""

    now: datetime
    round_id: int | None
    org_id: int | None


def take_fold(session: Session) -> FoldRequest | None:
    """The fold this transaction asked for, taken out so that its commit does not run it.

    For a caller with something more urgent after the commit — the bot answering the person
    who submitted — which then runs it itself with :func:`run_fold`. If the transaction
    does not commit, the ballots stay in the box, as on any failed fold.
    """
    request = session.info.pop(_FOLD, None)
    return FoldRequest(*request) if request is not None else None


def run_fold(engine: Engine, request: FoldRequest) -> None:
    """Fold what the request covers (its own transaction); a failure is logged, not raised."""
    try:
        fold_due(engine, now=request.now, round_id=request.round_id, org_id=request.org_id)
    except Exception as error:  # the ballots wait safely in the box; the next fold takes them
        log.warning("folding the ballot boxes failed, will retry: %s", type(error).__name__)


_QUEUED: dict[tuple[Engine, int | None, int | None], tuple[FoldRequest, Future[None]]] = {}
_QUEUED_GUARD = threading.Lock()


def queue_fold(engine: Engine, request: FoldRequest) -> Future[None]:
    """Run the fold on ``FOLDS``; a request for a branch whose fold is queued joins that one.

    At a meeting's end every confirmation of a branch asks for a fold; one fold not yet
    started takes all their ballots (they were committed before it reads the box), so the
    queue holds one fold per branch instead of one per full box, and the confirmations wait
    behind fewer holders of the box's lock.
    """
    key = (engine, request.round_id, request.org_id)
    with _QUEUED_GUARD:
        queued = _QUEUED.get(key)
        if queued is not None:
            earlier, future = queued
            _QUEUED[key] = (replace(earlier, now=max(earlier.now, request.now)), future)
            return future
        future = FOLDS.submit(_run_queued, key)
        _QUEUED[key] = (request, future)
        return future


def _run_queued(key: tuple[Engine, int | None, int | None]) -> None:
    with _QUEUED_GUARD:  # from here on, a new request queues a fold of its own
        request, _future = _QUEUED.pop(key)
    run_fold(key[0], request)


@event.listens_for(Session, "after_commit")
def _fold_when_committed(session: Session) -> None:
    request = take_fold(session)
    if request is None:
        return
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    if is_quick(engine):
        # Never on the event loop's thread: a fold holds the write lock for a while.
        queue_fold(main_engine(engine), request)
        return
    run_fold(engine, request)


@event.listens_for(Session, "after_rollback")
def _forget_fold(session: Session) -> None:
    session.info.pop(_FOLD, None)


def fold_due(
    engine: Engine, *, now: datetime, round_id: int | None = None, org_id: int | None = None
) -> int:
    """Fold every due box (of one round, or all) in its own transaction; purge closed rounds.

    Returns how many ballots went into the counters. Safe to call any time, from any process.
    """
    with Session(engine, expire_on_commit=False) as session:
        try:
            folded, closed = fold_due_boxes(
                session=session, now=now, round_id=round_id, org_id=org_id
            )
            purged = purge_closed_rounds(session=session, round_ids=closed)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    if purged:
        scrub(engine)
    return folded


def _boxes(session: Session, round_id: int | None, org_id: int | None) -> Sequence[SatisfactionBox]:
    statement = select(SatisfactionBox).with_for_update().execution_options(populate_existing=True)
    if round_id is not None:
        statement = statement.where(col(SatisfactionBox.round_id) == round_id)
    if org_id is not None:
        statement = statement.where(col(SatisfactionBox.org_id) == org_id)
    return session.exec(
        statement.order_by(col(SatisfactionBox.round_id), col(SatisfactionBox.org_id))
    ).all()


@dataclass(frozen=True)
class _RoundFacts:
    """What a fold reads of a box's round: read once, before any box is locked."""

    round: Round
    deadline: datetime | None  # of its satisfaction phase
    instrument: Instrument  # its satisfaction form

    def final(self, now: datetime) -> bool:
        """Whether every ballot is folded now (the round closed or the phase is over)."""
        closed = self.round.status == "closed"
        return closed or (self.deadline is not None and now >= self.deadline)


def fold_due_boxes(
    *, session: Session, now: datetime, round_id: int | None = None, org_id: int | None = None
) -> tuple[int, set[int]]:
    """Fold what may be folded now; (ballots folded, ids of closed rounds seen).

    The caller's transaction must write nothing that names a person.
    """
    known: dict[int, _RoundFacts | None] = {}
    if round_id is not None:
        # Read before the boxes are locked: each round trip made while holding a branch's
        # box is one its voters wait for (a meeting's end). A round closed meanwhile asks
        # for a fold of its own once that commits.
        _round_facts(session, round_id, known)
    folded, closed = 0, set()
    for box in _boxes(session, round_id, org_id):
        facts = _round_facts(session, box.round_id, known)
        if facts is None:
            continue
        if facts.round.status == "closed":
            closed.add(box.round_id)
        threshold = _threshold(facts.round.options)
        count = len(box.ballots)
        take = count if facts.final(now) else (count - threshold if count >= 2 * threshold else 0)
        if take > 0:
            _fold(session, box, take, facts.instrument)
            folded += take
    if round_id is not None:
        round_ = session.get(Round, round_id)
        if round_ is not None and round_.status == "closed":
            closed.add(round_id)
    return folded, closed


def _round_facts(
    session: Session, round_id: int, known: dict[int, _RoundFacts | None]
) -> _RoundFacts | None:
    if round_id not in known:
        round_ = session.get(Round, round_id)
        phase = session.get(RoundPhase, (round_id, Phase.SATISFACTION.value))
        known[round_id] = (
            None
            if round_ is None
            else _RoundFacts(
                round=round_,
                deadline=phase.deadline if phase is not None else None,
                instrument=_satisfaction_instrument(session, round_id),
            )
        )
    return known[round_id]


def _threshold(options: Mapping[str, Any]) -> int:
    """The small-group threshold of the round (the same default as storage.tallies)."""
    try:
        return max(1, int(options.get("small_group_threshold", DEFAULT_THRESHOLD)))
    except (TypeError, ValueError):
        return DEFAULT_THRESHOLD


def _satisfaction_instrument(session: Session, round_id: int) -> Instrument:
    pin = session.exec(
        select(RoundInstrument).where(
            col(RoundInstrument.round_id) == round_id,
            col(RoundInstrument.phase) == Phase.SATISFACTION.value,
        )
    ).first()
    if pin is None:
        return get_instrument("satisfaction")
    return get_instrument(pin.instrument_id, pin.version)


def _fold(session: Session, box: SatisfactionBox, take: int, instrument: Instrument) -> None:
    """Move a random subset of take ballots from the box into the branch's counters."""
    ballots = list(box.ballots)
    _random.shuffle(ballots)
    chosen, kept = ballots[:take], ballots[take:]
    box.ballots = kept
    session.add(box)
    key = {"round_id": box.round_id, "org_id": box.org_id}
    delta = _add_counts(session, instrument, key, chosen)
    # The summary moves with the counters, from the same counts, in this same transaction.
    summary.add_ballots(session, key, len(chosen), summary.satisfaction_sums_of(instrument, delta))
    texts = [text for ballot in chosen for text in ballot.get("t", [])]
    if texts:
        _add_comments(session, key, texts)
    session.flush()


def _canonical_options(instrument: Instrument) -> list[tuple[str, str]]:
    """Every (item, option) pair of the choice items, in the form's order."""
    return [
        (item.id, option.id)
        for item in instrument.items
        if item.kind == "choice"
        for option in item.options
    ]


def _add_counts(
    session: Session, instrument: Instrument, key: Mapping[str, int], chosen: list[Ballot]
) -> dict[tuple[str, str], int]:
    """Create all counter rows of the branch at once, then rewrite every one of them.

    Returns what was added per (question, option).
    """
    pairs = _canonical_options(instrument)
    delta = dict.fromkeys(pairs, 0)
    for ballot in chosen:
        for item_id, option_id in ballot.get("c", []):
            delta[(item_id, option_id)] = delta.get((item_id, option_id), 0) + 1
    rows = [{**key, "item_id": i, "option_id": o, "count": n} for (i, o), n in delta.items()]
    session.execute(_add_statement(session.get_bind().dialect.name), rows)
    return delta


@cache
def _add_statement(dialect: str) -> Any:
    """Create the rows that are missing and add to every one, in one statement (one trip)."""
    table = SatisfactionTally.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=["round_id", "org_id", "item_id", "option_id"],
        set_={"count": table.c.count + statement.excluded.count},
    )


def _add_comments(session: Session, key: Mapping[str, int], texts: list[str]) -> None:
    """Append suggestions and reshuffle the branch's list, so position tells nothing."""
    session.execute(
        _insert(session)(SatisfactionComments.__table__)  # type: ignore[attr-defined]
        .values(**key, comments=[])
        .on_conflict_do_nothing(index_elements=list(key))
    )
    statement = (
        select(SatisfactionComments)
        .where(
            col(SatisfactionComments.round_id) == key["round_id"],
            col(SatisfactionComments.org_id) == key["org_id"],
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    row = session.exec(statement).one()
    comments = [*row.comments, *texts]
    _random.shuffle(comments)
    row.comments = comments
    session.add(row)


# --- Purging and scrubbing when a round closes -----------------------------------------------


def purge_closed_rounds(*, session: Session, round_ids: Iterable[int]) -> bool:
    """Delete the anonymous survey's drafts and the (folded, empty) boxes of closed rounds."""
    purged = False
    for round_id in sorted(set(round_ids)):
        anonymous = [
            pin.instrument_id
            for pin in session.exec(
                select(RoundInstrument).where(col(RoundInstrument.round_id) == round_id)
            ).all()
            if get_instrument(pin.instrument_id, pin.version).anonymous
        ]
        if anonymous:
            drafts = select(Assignment.id).where(
                col(Assignment.round_id) == round_id, col(Assignment.instrument_id).in_(anonymous)
            )
            session.execute(delete(Draft).where(col(Draft.assignment_id).in_(drafts)))
        session.execute(delete(SatisfactionBox).where(col(SatisfactionBox.round_id) == round_id))
        purged = True
    return purged


def scrub(engine: Engine) -> None:
    """Make deleted rows unrecoverable from the files: VACUUM, or a truncating checkpoint."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM " + ", ".join(SCRUBBED_TABLES))
        return
    connection = engine.raw_connection()  # outside any transaction, as a checkpoint must be
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        connection.close()
