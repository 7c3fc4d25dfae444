"""What the answering handlers (``bot.answering``) read: an assignment with all a step needs.

Read-only; the writes (answers, draft screens, submission) are ``storage.responses``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam
from sqlmodel import col, select

from storage.db import Session
from storage.models import (
    Assignment,
    BranchRerun,
    Draft,
    Organization,
    Round,
    RoundInstrument,
    RoundPhase,
    TelegramAccount,
)
from storage.remedies import rerun_window, with_rerun
from storage.responses import ASSIGNMENT_COLUMNS, DRAFT_COLUMNS, AssignmentRow, DraftRow


@dataclass(frozen=True, slots=True)
class RoundRow:
    """What a step needs of its round."""

    id: int
    status: str


@dataclass(frozen=True, slots=True)
class PinRow:
    """The instrument version a round pinned, and the phase it belongs to."""

    version: int
    phase: str


@dataclass(frozen=True, slots=True)
class PhaseRow:
    """A phase's window (the columns ``window_state`` reads)."""

    round_id: int
    phase: str
    opens_at: datetime | None
    deadline: datetime


@dataclass(frozen=True, slots=True)
class OwnerRow:
    """The Telegram account of the assignment's person."""

    telegram_user_id: int
    person_id: int
    language: str | None


class StepRow(NamedTuple):
    """One assignment with its round, pin, phase, branch, owner's account and draft."""

    assignment: AssignmentRow
    round: RoundRow
    pin: PinRow | None
    phase: PhaseRow | RoundPhase | None
    branch_name: str
    owner: OwnerRow | None
    draft: DraftRow | None


class TodoRow(NamedTuple):
    """One assignment of a person in an open round, for the to-do list."""

    assignment: Assignment
    round: Round
    pin: RoundInstrument | None
    branch_name: str
    draft: Draft | None


def _pinned_join(statement: Any) -> Any:
    """Join an Assignment query to its round, branch and the round's pinned instrument."""
    return (
        statement.join(Round, col(Round.id) == Assignment.round_id)
        .join(Organization, col(Organization.id) == Assignment.org_id)
        .outerjoin(
            RoundInstrument,
            and_(
                col(RoundInstrument.round_id) == Assignment.round_id,
                col(RoundInstrument.instrument_id) == Assignment.instrument_id,
            ),
        )
    )


_ROUND = Round.__table__  # type: ignore[attr-defined]
_PIN = RoundInstrument.__table__  # type: ignore[attr-defined]
_PHASE = RoundPhase.__table__  # type: ignore[attr-defined]
_ACCOUNT = TelegramAccount.__table__  # type: ignore[attr-defined]
_DRAFT = Draft.__table__  # type: ignore[attr-defined]
_ASSIGNMENT = Assignment.__table__  # type: ignore[attr-defined]
_BRANCH_NAME = Organization.__table__.c.name  # type: ignore[attr-defined]
_RERUN_DEADLINE = BranchRerun.__table__.c.deadline  # type: ignore[attr-defined]
# The plain columns a step reads, one group per row type, in this order.
_GROUPS = (
    ASSIGNMENT_COLUMNS,
    (_ROUND.c.id, _ROUND.c.status),
    (_PIN.c.version, _PIN.c.phase),
    (_PHASE.c.round_id, _PHASE.c.phase, _PHASE.c.opens_at, _PHASE.c.deadline),
    (_BRANCH_NAME,),
    (_ACCOUNT.c.telegram_user_id, _ACCOUNT.c.person_id, _ACCOUNT.c.language),
    DRAFT_COLUMNS,
    (_RERUN_DEADLINE,),
)
_STEP_COLUMNS = tuple(column for group in _GROUPS for column in group)


def _slices() -> list[slice]:
    """Where each group of ``_GROUPS`` lies in a result row."""
    bounds, start = [], 0
    for group in _GROUPS:
        bounds.append(slice(start, start + len(group)))
        start += len(group)
    return bounds


_ASSIGNMENT_AT, _ROUND_AT, _PIN_AT, _PHASE_AT, _NAME_AT, _OWNER_AT, _DRAFT_AT, _RERUN_AT = _slices()


def _step_query(*, draft_required: bool) -> Any:
    """Everything a step needs in one round trip (the draft outer-joined, or required).

    Plain columns, no ORM entities: a tap builds tuples, not mapped objects.
    """
    statement = (
        _pinned_join(select(*_STEP_COLUMNS).select_from(_ASSIGNMENT))  # type: ignore[call-overload]
        .outerjoin(
            _PHASE,
            and_(_PHASE.c.round_id == _ASSIGNMENT.c.round_id, _PHASE.c.phase == _PIN.c.phase),
        )
        .outerjoin(_ACCOUNT, _ACCOUNT.c.person_id == _ASSIGNMENT.c.person_id)
    )
    on_draft = _DRAFT.c.assignment_id == _ASSIGNMENT.c.id
    if draft_required:
        statement = statement.join(_DRAFT, on_draft)
    else:
        statement = statement.outerjoin(_DRAFT, on_draft)
    # A branch under 补测 answers in its own window (docs/rules.md §6.4): joined here, so
    # a tap needs no second read for it.
    return statement.outerjoin(
        BranchRerun,
        and_(
            col(BranchRerun.round_id) == Assignment.round_id,
            col(BranchRerun.org_id) == Assignment.org_id,
        ),
    ).where(_ASSIGNMENT.c.id == bindparam("assignment_id"))


def _step_row(row: Any) -> StepRow:
    """A step's rows from one result row of ``_step_query`` (None where outer-joined away)."""
    pin, phase, owner, draft = (
        row[_PIN_AT],
        row[_PHASE_AT],
        row[_OWNER_AT],
        row[_DRAFT_AT],
    )
    return StepRow(
        assignment=AssignmentRow(*row[_ASSIGNMENT_AT]),
        round=RoundRow(*row[_ROUND_AT]),
        pin=PinRow(*pin) if pin[0] is not None else None,
        phase=with_rerun(PhaseRow(*phase) if phase[0] is not None else None, row[_RERUN_AT][0]),
        branch_name=row[_NAME_AT][0],
        owner=OwnerRow(*owner) if owner[0] is not None else None,
        draft=DraftRow(*draft) if draft[0] is not None else None,
    )


# Built once, so SQLAlchemy caches their compilation.
_LOAD = _step_query(draft_required=False)
# PostgreSQL, a step on a survey under way: the assignment and its draft locked by the read
# itself, assignment first as every writer does. A statement that waited for these locks
# returns the newest versions of the rows it locked (READ COMMITTED re-checks them), so
# the draft it shows is the one the previous step committed. The other joined rows (round,
# phase, branch) are as the statement began, as they would be after a separate lock.
_LOAD_LOCKED = _step_query(draft_required=True).with_for_update(of=[_ASSIGNMENT, _DRAFT])
_LOCK = (
    select(_ASSIGNMENT.c.id).where(_ASSIGNMENT.c.id == bindparam("assignment_id")).with_for_update()
)


def lock_assignment(*, session: Session, assignment_id: int) -> None:
    """Make concurrent steps on one assignment take turns, each reading what the last wrote.

    PostgreSQL: a row lock taken by its own statement *before* the loading query, because
    in READ COMMITTED a statement that waited for a lock still sees the joined rows (the
    draft) as they were when it started. SQLite: every transaction already holds the write
    lock from its start (storage.db begins them IMMEDIATE).
    """
    if session.get_bind().dialect.name != "sqlite":
        session.connection().execute(_LOCK, {"assignment_id": assignment_id}).first()


def load_step(*, session: Session, assignment_id: int) -> StepRow | None:
    """The assignment, locked first, with everything a step needs; None when there is none.

    PostgreSQL: one statement locks and reads when a draft exists (every tap but the
    first); else — no draft yet, or it was submitted while this step waited — the lock is
    taken on its own and the read follows.
    """
    params = {"assignment_id": assignment_id}
    connection = session.connection()
    row = None
    if connection.dialect.name != "sqlite":
        row = connection.execute(_LOAD_LOCKED, params).first()
    if row is None:
        lock_assignment(session=session, assignment_id=assignment_id)
        row = connection.execute(_LOAD, params).first()
    return _step_row(row) if row is not None else None


def round_phase(
    *, session: Session, round_id: int, phase: str, org_id: int | None = None
) -> RoundPhase | None:
    """One phase (window and deadline) of a round; a branch's 补测 window when it has one."""
    found = session.get(RoundPhase, (round_id, phase))
    if org_id is None:
        return found
    return rerun_window(session, round_id=round_id, org_id=org_id, phase=found)


def todo_rows(
    *, session: Session, person_id: int
) -> tuple[list[TodoRow], dict[tuple[int, str], RoundPhase], dict[tuple[int, int], datetime]]:
    """The person's assignments in open rounds, those rounds' phases by (round, phase), and
    the 补测 deadlines of their branches by (round, org): a branch in 补测 answers until its
    own deadline (``with_rerun``), and its members' lists must say so."""
    statement = (
        _pinned_join(
            select(Assignment, Round, RoundInstrument, Organization.name, Draft)  # type: ignore[call-overload]
        )
        .outerjoin(Draft, col(Draft.assignment_id) == Assignment.id)
        .where(Assignment.person_id == person_id, Round.status == "open")
        .order_by(col(Assignment.round_id), col(Assignment.instrument_id), Organization.name)
    )
    rows = [TodoRow(*row) for row in session.exec(statement).all()]
    round_ids = {row.round.id for row in rows}
    phases = {
        (phase.round_id, phase.phase): phase
        for phase in session.exec(select(RoundPhase).where(col(RoundPhase.round_id).in_(round_ids)))
    }
    org_ids = {row.assignment.org_id for row in rows}
    reruns = {
        (rerun.round_id, rerun.org_id): rerun.deadline
        for rerun in session.exec(
            select(BranchRerun).where(
                col(BranchRerun.round_id).in_(round_ids), col(BranchRerun.org_id).in_(org_ids)
            )
        )
    }
    return rows, phases, reruns


def unsubmitted_instruments(*, session: Session, person_id: int, round_id: int) -> list[str]:
    """The instrument ids of a person's assignments in a round not submitted yet."""
    statement = select(Assignment.instrument_id).where(
        Assignment.person_id == person_id,
        Assignment.round_id == round_id,
        Assignment.status != "submitted",
    )
    return list(session.exec(statement).all())


def active_assignment(*, session: Session, telegram_user_id: int) -> int | None:
    """The assignment whose draft this Telegram user touched last: the survey on their screen."""
    statement = (
        select(Draft.assignment_id)
        .join(Assignment, col(Assignment.id) == Draft.assignment_id)
        .join(TelegramAccount, col(TelegramAccount.person_id) == Assignment.person_id)
        .where(
            TelegramAccount.telegram_user_id == telegram_user_id,
            Assignment.status != "submitted",
        )
        .order_by(col(Draft.updated_at).desc())
        .limit(1)
    )
    return session.exec(statement).first()
