"""Saving answers as they are given and submitting responses, named or anonymous.

Every function takes the session as a keyword and does one thing; the caller owns the
transaction (``storage.db.transaction``), so what belongs together lands together.

Each writer locks the assignment row first (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite
transactions begin IMMEDIATE). A caller that wants to compare a draft's revision must read
the draft *after* that lock in the same session: an object loaded earlier stays cached in
the session and would show the revision from before another process's write.

A caller that already took the lock and read the assignment, its pinned instrument and its
draft after it (the bot does, in one query per tap) passes them as ``held=Held(...)``, so
the writers skip reading them a second time.

The assignment and the draft are read as plain rows (``AssignmentRow``, ``DraftRow``) and
written with Core statements: a survey tap builds no ORM object and leaves nothing in the
session's identity map (the unit of work's bookkeeping is most of a tap's CPU otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlmodel import Session

from storage import summary
from storage.ballots import drop_ballot, make_ballot
from storage.models import (
    Answer,
    Assignment,
    Draft,
    Response,
    Round,
    RoundInstrument,
    RoundPhase,
)
from storage.types import utcnow
from surveys.instruments import (
    AnswerValue,
    Instrument,
    get_instrument,
    missing_required,
    validate_answer,
)
from surveys.scoring import satisfaction_counts, score_response


class AlreadySubmitted(Exception):
    """The response was submitted before: it is final."""


class Incomplete(Exception):
    """Required items are still unanswered."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


class StaleDraft(Exception):
    """The draft changed since the screen the person tapped on (old button, other process)."""


class WindowState(StrEnum):
    """Whether answers are accepted for a phase right now."""

    NOT_OPEN = "not_open"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(slots=True)
class AssignmentRow:
    """The columns of an assignment that answering reads (its status changes in place)."""

    id: int
    round_id: int
    person_id: int
    org_id: int
    instrument_id: str
    status: str


@dataclass(slots=True)
class DraftRow:
    """A draft as stored; the writers below change it in place as they write it."""

    assignment_id: int
    answers: dict[str, Any]
    position: int = 0
    stage: str = "question"
    chat_id: int | None = None
    message_id: int | None = None
    revision: int = 0


@dataclass(frozen=True)
class Held:
    """An assignment this session has locked, with its pinned instrument and draft read after.

    Only valid in the session (and transaction) that took the lock and read these rows.
    """

    assignment: AssignmentRow
    instrument: Instrument
    draft: DraftRow | None


@dataclass(frozen=True)
class SubmitOutcome:
    """What a submission stored."""

    assignment_id: int
    anonymous: bool
    total: Decimal | None


# --- Reading -------------------------------------------------------------------------------


def instrument_for(session: Session, *, assignment: Assignment | AssignmentRow) -> Instrument:
    """The instrument version the assignment's round pinned."""
    pin = session.get(RoundInstrument, (assignment.round_id, assignment.instrument_id))
    version = pin.version if pin is not None else None
    return get_instrument(assignment.instrument_id, version)


def get_draft(session: Session, *, assignment_id: int) -> Draft | None:
    """The saved draft of an assignment, if any answering has started."""
    return session.get(Draft, assignment_id)


def draft_answers(draft: Draft | DraftRow | None) -> dict[str, AnswerValue]:
    """The draft's answers as AnswerValues, by item id."""
    if draft is None:
        return {}
    return {item_id: AnswerValue.model_validate(raw) for item_id, raw in draft.answers.items()}


class LazyAnswers(Mapping[str, AnswerValue]):
    """A draft's answers, each parsed when first read: a question's screen reads one of up
    to dozens, and a tap drew it from all of them parsed (a pydantic validation each)."""

    __slots__ = ("_parsed", "_raw")

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self._raw = raw  # the stored answers: replaced on a save, never changed in place
        self._parsed: dict[str, AnswerValue] = {}

    def __getitem__(self, item_id: str) -> AnswerValue:
        parsed = self._parsed.get(item_id)
        if parsed is None:
            parsed = self._parsed[item_id] = AnswerValue.model_validate(self._raw[item_id])
        return parsed

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._raw


def lazy_answers(draft: DraftRow | None) -> LazyAnswers:
    """The draft's answers as AnswerValues by item id, parsed as they are read."""
    return LazyAnswers(draft.answers if draft is not None else {})


def phase_window(session: Session, *, round_id: int, phase: str) -> RoundPhase | None:
    """The opening time and deadline of one phase of a round."""
    return session.get(RoundPhase, (round_id, phase))


def window_state(round_: Round, phase: RoundPhase | None, now: datetime) -> WindowState:
    """Open only while the round is open and now lies inside the phase's window."""
    if round_.status == "closed":
        return WindowState.CLOSED
    if round_.status != "open" or phase is None:
        return WindowState.NOT_OPEN
    if phase.opens_at is not None and now < phase.opens_at:
        return WindowState.NOT_OPEN
    if now >= phase.deadline:
        return WindowState.CLOSED
    return WindowState.OPEN


# --- Drafts --------------------------------------------------------------------------------

_ASSIGNMENT = Assignment.__table__  # type: ignore[attr-defined]
_DRAFT = Draft.__table__  # type: ignore[attr-defined]
# The columns of AssignmentRow and DraftRow, in their fields' order.
ASSIGNMENT_COLUMNS = tuple(_ASSIGNMENT.c[name] for name in AssignmentRow.__dataclass_fields__)
DRAFT_COLUMNS = tuple(_DRAFT.c[name] for name in DraftRow.__dataclass_fields__)
_SAVED_COLUMNS = ("answers", "position", "stage", "chat_id", "message_id", "revision", "updated_at")
# Every statement of the writers is built once, so SQLAlchemy caches its compilation.
_KEY = bindparam("key")
_LOCK_ASSIGNMENT = select(*ASSIGNMENT_COLUMNS).where(_ASSIGNMENT.c.id == _KEY).with_for_update()
_READ_DRAFT = select(*DRAFT_COLUMNS).where(_DRAFT.c.assignment_id == _KEY)
_UPDATE_DRAFT = (
    update(_DRAFT)
    .where(_DRAFT.c.assignment_id == _KEY)
    .values({name: bindparam(name) for name in _SAVED_COLUMNS})
)
_INSERT_DRAFT = insert(_DRAFT).values(
    {"assignment_id": _KEY, **{name: bindparam(name) for name in _SAVED_COLUMNS}}
)
_DELETE_DRAFT = delete(_DRAFT).where(_DRAFT.c.assignment_id == _KEY)
_MARK_IN_PROGRESS = update(_ASSIGNMENT).where(_ASSIGNMENT.c.id == _KEY).values(status="in_progress")
_CLAIM = (
    update(_ASSIGNMENT)
    .where(_ASSIGNMENT.c.id == _KEY, _ASSIGNMENT.c.status != "submitted")
    .values(status="submitted", submitted_at=bindparam("submitted_at"))
)


def _locked_assignment(session: Session, assignment_id: int) -> AssignmentRow:
    """The assignment, row-locked on PostgreSQL so two bot processes take turns."""
    row = session.connection().execute(_LOCK_ASSIGNMENT, {"key": assignment_id}).first()
    if row is None:
        raise LookupError(f"assignment {assignment_id}")
    assignment = AssignmentRow(*row)
    if assignment.status == "submitted":
        raise AlreadySubmitted(assignment_id)
    return assignment


def _hold(session: Session, assignment_id: int, held: Held | None) -> Held:
    """The caller's locked assignment, instrument and draft, or lock and read them now."""
    if held is not None:
        if held.assignment.id != assignment_id:
            raise ValueError(f"held assignment {held.assignment.id} is not {assignment_id}")
        if held.assignment.status == "submitted":
            raise AlreadySubmitted(assignment_id)
        return held
    assignment = _locked_assignment(session, assignment_id)
    instrument = instrument_for(session, assignment=assignment)
    row = session.connection().execute(_READ_DRAFT, {"key": assignment_id}).first()
    return Held(assignment, instrument, DraftRow(*row) if row is not None else None)


def _save_draft(
    session: Session,
    held: Held,
    expected_revision: int | None,
    **changes: Any,
) -> DraftRow:
    """Apply ``changes`` to the held draft (a new one if none), bump its revision, write it.

    One Core UPDATE (an INSERT for the first save); the held row is changed in place and
    returned. The caller holds the assignment's lock, so the revision read after that lock
    is the stored one.
    """
    draft = held.draft
    fresh = draft is None
    if draft is None:
        draft = DraftRow(assignment_id=held.assignment.id, answers={})
    if expected_revision is not None and draft.revision != expected_revision:
        raise StaleDraft(draft.assignment_id)
    changes["revision"] = draft.revision + 1
    for name, value in changes.items():
        setattr(draft, name, value)
    values = {name: getattr(draft, name) for name in _SAVED_COLUMNS if name != "updated_at"}
    statement = _INSERT_DRAFT if fresh else _UPDATE_DRAFT
    session.connection().execute(
        statement, {"key": draft.assignment_id, **values, "updated_at": utcnow()}
    )
    return draft


def save_answer(
    session: Session,
    *,
    assignment_id: int,
    item_id: str,
    value: AnswerValue,
    stage: str | None = None,
    position: int | None = None,
    expected_revision: int | None = None,
    held: Held | None = None,
) -> DraftRow:
    """Validate one answer and keep it in the draft at once; AnswerError if it does not fit."""
    held = _hold(session, assignment_id, held)
    assignment = held.assignment
    checked = validate_answer(held.instrument.item(item_id), value)
    current = held.draft.answers if held.draft is not None else {}
    # A new dict: the held row's answers are replaced, never changed under a reader.
    answers = {**current, item_id: checked.model_dump(mode="json", exclude_none=True)}
    changes = _given(stage=stage, position=position)
    draft = _save_draft(session, held, expected_revision, answers=answers, **changes)
    if assignment.status != "in_progress":  # the first answer only
        session.connection().execute(_MARK_IN_PROGRESS, {"key": assignment_id})
        assignment.status = "in_progress"
    return draft


def clear_answer(
    session: Session,
    *,
    assignment_id: int,
    item_id: str,
    expected_revision: int | None = None,
    held: Held | None = None,
) -> DraftRow:
    """Forget the answer to one item (an optional question skipped after all)."""
    held = _hold(session, assignment_id, held)
    current = held.draft.answers if held.draft is not None else {}
    answers = {key: raw for key, raw in current.items() if key != item_id}
    return _save_draft(session, held, expected_revision, answers=answers)


def update_draft_view(
    session: Session,
    *,
    assignment_id: int,
    position: int | None = None,
    stage: str | None = None,
    chat_id: int | None = None,
    message_id: int | None = None,
    expected_revision: int | None = None,
    held: Held | None = None,
) -> DraftRow:
    """Move within the survey or remember which message shows it, without changing answers."""
    held = _hold(session, assignment_id, held)
    changes = _given(position=position, stage=stage, chat_id=chat_id, message_id=message_id)
    return _save_draft(session, held, expected_revision, **changes)


def _given(**values: Any) -> dict[str, Any]:
    """The keyword arguments that were given (None means: leave as it is)."""
    return {name: value for name, value in values.items() if value is not None}


# --- Submitting ----------------------------------------------------------------------------


def _claim_submission(session: Session, assignment_id: int, submitted_at: datetime | None) -> None:
    """Mark submitted only if it was not yet: a double tap or a second process gets nothing."""
    params = {"key": assignment_id, "submitted_at": submitted_at}
    result = session.connection().execute(_CLAIM, params)
    if result.rowcount != 1:
        raise AlreadySubmitted(assignment_id)


def submit(
    session: Session, *, assignment_id: int, now: datetime, held: Held | None = None
) -> SubmitOutcome:
    """Make the draft a final response: anonymous tallies or a named response, in one go."""
    held = _hold(session, assignment_id, held)
    assignment, instrument, draft = held.assignment, held.instrument, held.draft
    answers = draft_answers(draft)
    missing = missing_required(instrument, answers)
    if missing:
        raise Incomplete(missing)
    if instrument.anonymous:
        _claim_submission(session, assignment_id, None)
        _add_ballot(session, assignment, instrument, answers, now)
        total = None
    else:
        _claim_submission(session, assignment_id, now)
        total = _store_named_response(session, assignment, instrument, answers, now)
    if draft is not None:
        session.connection().execute(_DELETE_DRAFT, {"key": assignment_id})
    held.assignment.status = "submitted"
    session.flush()
    return SubmitOutcome(assignment_id=assignment_id, anonymous=instrument.anonymous, total=total)


def _store_named_response(
    session: Session,
    assignment: AssignmentRow,
    instrument: Instrument,
    answers: Mapping[str, AnswerValue],
    now: datetime,
) -> Decimal | None:
    """A Response with one Answer per item, each carrying its item score for SQL sums."""
    score = score_response(instrument, answers)
    response = Response(
        assignment_id=assignment.id,
        round_id=assignment.round_id,
        org_id=assignment.org_id,
        person_id=assignment.person_id,
        instrument_id=instrument.id,
        instrument_version=instrument.version,
        total=score.total,
        submitted_at=now,
    )
    session.add(response)
    session.flush()
    summary.add_response(session, response)  # the branch's summary, in this transaction
    for item in instrument.items:
        value = answers.get(item.id)
        if value is None:
            continue
        session.add(_answer_row(response.id, instrument, item.id, value))  # type: ignore[arg-type]
    return score.total


def _answer_row(
    response_id: int, instrument: Instrument, item_id: str, value: AnswerValue
) -> Answer:
    item = instrument.item(item_id)
    item_score: Decimal | None = None
    if item.kind == "points":
        item_score = value.points
    elif item.kind == "deduction" and item.max_points is not None and value.deduction is not None:
        item_score = max(Decimal(0), item.max_points - value.deduction)
    return Answer(
        response_id=response_id,
        section_id=instrument.section_of(item_id).id,
        item_id=item_id,
        choice=value.choice,
        points=value.points,
        deduction=value.deduction,
        reason=value.reason,
        text=value.text,
        score=item_score,
    )


# --- The anonymous ballot box --------------------------------------------------------------


def _add_ballot(
    session: Session,
    assignment: AssignmentRow,
    instrument: Instrument,
    answers: Mapping[str, AnswerValue],
    now: datetime,
) -> None:
    """Drop the sealed ballot into the branch's box; a later fold counts it (storage.ballots)."""
    texts = [value.text for value in answers.values() if value.text]
    ballot = make_ballot(satisfaction_counts(instrument, answers), texts)
    drop_ballot(
        session, round_id=assignment.round_id, org_id=assignment.org_id, ballot=ballot, now=now
    )
