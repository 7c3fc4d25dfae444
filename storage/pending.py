"""Conversation steps that wait for a text message (an override's reason, a ledger field).

One ``PendingInput`` row per person: starting a step replaces any earlier one, and it
expires ``PENDING_MAX_AGE`` after it was started by the bot's injected clock (the ``now``
the caller passes), never the wall clock. So a restarted bot, or a second bot process,
picks the conversation up where it stopped, and a test that moves the clock moves the
limit with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from storage.models import PendingInput

PENDING_MAX_AGE = timedelta(minutes=30)


@dataclass(frozen=True)
class Pending:
    """What the next text message of a person answers, and until when it waits."""

    kind: str
    data: dict[str, Any]
    expires_at: datetime


def set_pending(
    session: Session,
    *,
    person_id: int,
    kind: str,
    data: dict[str, Any],
    now: datetime,
    max_age: timedelta = PENDING_MAX_AGE,
) -> None:
    """Remember that the next text of this person answers ``kind`` (replacing any earlier)."""
    row = session.get(PendingInput, person_id) or PendingInput(
        person_id=person_id, kind=kind, expires_at=now
    )
    row.kind, row.data, row.expires_at = kind, dict(data), now + max_age
    session.add(row)
    session.flush()


def clear_pending(session: Session, *, person_id: int) -> None:
    """End whatever this person was in the middle of."""
    row = session.get(PendingInput, person_id)
    if row is not None:
        session.delete(row)
        session.flush()


def pending_for(session: Session, *, person_id: int, now: datetime) -> Pending | None:
    """The person's open conversation step, unless it has expired by ``now``."""
    row = session.get(PendingInput, person_id)
    if row is None or now >= row.expires_at:
        return None
    return Pending(kind=row.kind, data=dict(row.data), expires_at=row.expires_at)
