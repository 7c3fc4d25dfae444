"""The outbox: one queue of messages to deliver, each with status, attempts and error.

* ``enqueue`` inserts with ON CONFLICT DO NOTHING on the unique dedup key
  ``<round>:<recipient>:<kind>:<slot>``, so two schedulers, a restart or a retry add a
  reminder once.
* ``claim_due`` hands rows to one delivery worker: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
  a conditional ``UPDATE … WHERE status = 'pending'`` on SQLite (whose writers take turns).
  A row left in ``sending`` by a worker that died is claimed again after the lease.
* ``mark_*`` move a claimed row on, and only while the caller still holds the claim.

Every function takes the session as a keyword and does one thing; the caller owns the
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from storage.models import OutboxMessage, TelegramAccount

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
DROPPED = "dropped"
MAX_ERROR_LENGTH = 500


def dedup_key(round_id: int | None, recipient: int | str, kind: str, slot: str) -> str:
    """The unique key of one message: round, recipient, kind and slot."""
    return f"{round_id if round_id is not None else '-'}:{recipient}:{kind}:{slot}"


@dataclass(frozen=True)
class NewMessage:
    """A message to enqueue; ``payload`` is ``{"text": …, "reply_markup": {…}}``."""

    round_id: int | None
    person_id: int | None
    chat_id: int
    kind: str
    slot: str
    payload: Mapping[str, Any]
    not_before: datetime
    expires_at: datetime | None = None

    @property
    def dedup_key(self) -> str:
        """Unique per round, recipient (person, else chat), kind and slot."""
        recipient = self.person_id if self.person_id is not None else f"c{self.chat_id}"
        return dedup_key(self.round_id, recipient, self.kind, self.slot)


def enqueue(session: Session, *, message: NewMessage, now: datetime) -> bool:
    """Add the message unless its dedup key exists; whether it was added."""
    row = OutboxMessage(
        dedup_key=message.dedup_key,
        round_id=message.round_id,
        person_id=message.person_id,
        chat_id=message.chat_id,
        kind=message.kind,
        slot=message.slot,
        payload=dict(message.payload),
        not_before=message.not_before,
        expires_at=message.expires_at,
        created_at=now,
    )
    values = row.model_dump(exclude={"id"})
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(OutboxMessage.__table__).values(**values)  # type: ignore[attr-defined]
    statement = statement.on_conflict_do_nothing(index_elements=["dedup_key"])
    # RETURNING tells reliably whether a row was inserted (rowcount does not on every driver).
    inserted = session.execute(statement.returning(OutboxMessage.__table__.c.id)).first()  # type: ignore[attr-defined]
    return inserted is not None


ENQUEUE_CHUNK = 1000


def enqueue_many(session: Session, *, messages: Sequence[NewMessage], now: datetime) -> int:
    """Add the messages whose dedup key is new, in bulk; how many were added.

    The same rule as :func:`enqueue` (ON CONFLICT DO NOTHING on the dedup key, so a second
    planner adds nothing), sent as one executemany per chunk: a county's fifty thousand
    reminders take seconds instead of a minute and a half of one statement each.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    statement = insert(table).on_conflict_do_nothing(index_elements=["dedup_key"])
    statement = statement.returning(table.c.id)  # what was inserted, as enqueue() tells
    added = 0
    for start in range(0, len(messages), ENQUEUE_CHUNK):
        rows = [_row(m, now) for m in messages[start : start + ENQUEUE_CHUNK]]
        # executemany: SQLAlchemy batches the rows into multi-row statements itself.
        added += len(session.execute(statement, rows).all())
    return added


def _row(message: NewMessage, now: datetime) -> dict[str, Any]:
    """The outbox row of a new message, as column values."""
    return {
        "dedup_key": message.dedup_key,
        "round_id": message.round_id,
        "person_id": message.person_id,
        "chat_id": message.chat_id,
        "kind": message.kind,
        "slot": message.slot,
        "payload": dict(message.payload),
        "status": PENDING,
        "attempts": 0,
        "not_before": message.not_before,
        "expires_at": message.expires_at,
        "created_at": now,
    }


def _claimable(now: datetime, lease: timedelta) -> Any:
    """Pending rows whose time has come, or rows whose sender's lease ran out."""
    return or_(
        and_(col(OutboxMessage.status) == PENDING, col(OutboxMessage.not_before) <= now),
        and_(
            col(OutboxMessage.status) == SENDING,
            col(OutboxMessage.claimed_at) < now - lease,
        ),
    )


def claim_due(
    session: Session, *, worker: str, now: datetime, limit: int, lease: timedelta
) -> list[OutboxMessage]:
    """Claim up to ``limit`` due rows for this worker, oldest first, and return them."""
    candidates = (
        select(OutboxMessage.id)
        .where(_claimable(now, lease))
        .order_by(col(OutboxMessage.not_before), col(OutboxMessage.id))
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    claimed: list[int] = []
    for row_id in session.exec(candidates).all():
        result = session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id) == row_id, _claimable(now, lease))
            .values(status=SENDING, claimed_by=worker, claimed_at=now)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(row_id)  # type: ignore[arg-type]
    if not claimed:
        return []
    rows = session.exec(
        select(OutboxMessage)
        .where(col(OutboxMessage.id).in_(claimed))
        .order_by(col(OutboxMessage.not_before), col(OutboxMessage.id))
        .execution_options(populate_existing=True)
    ).all()
    return list(rows)


def _finish(session: Session, *, message_id: int, worker: str, **values: Any) -> bool:
    """Update a row this worker still holds; False when the claim was lost (lease ran out)."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.id) == message_id,
            col(OutboxMessage.status) == SENDING,
            col(OutboxMessage.claimed_by) == worker,
        )
        .values(**values)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def mark_sent(
    session: Session, *, message_id: int, worker: str, telegram_message_id: int, now: datetime
) -> bool:
    """The message reached Telegram."""
    return _finish(
        session,
        message_id=message_id,
        worker=worker,
        status=SENT,
        sent_at=now,
        telegram_message_id=telegram_message_id,
        attempts=OutboxMessage.attempts + 1,
        error=None,
    )


def mark_retry(
    session: Session,
    *,
    message_id: int,
    worker: str,
    not_before: datetime,
    error: str | None,
    count_attempt: bool = True,
) -> bool:
    """Put the row back in the queue for a later try."""
    attempts = OutboxMessage.attempts + (1 if count_attempt else 0)
    return _finish(
        session,
        message_id=message_id,
        worker=worker,
        status=PENDING,
        not_before=not_before,
        attempts=attempts,
        error=_short(error),
        claimed_by=None,
        claimed_at=None,
    )


def mark_failed(session: Session, *, message_id: int, worker: str, error: str) -> bool:
    """Give up on the row for good, keeping the reason."""
    return _finish(
        session,
        message_id=message_id,
        worker=worker,
        status=FAILED,
        attempts=OutboxMessage.attempts + 1,
        error=_short(error),
    )


def mark_dropped(session: Session, *, message_id: int, worker: str, reason: str) -> bool:
    """A claimed row that must not go out any more (expired)."""
    return _finish(
        session, message_id=message_id, worker=worker, status=DROPPED, error=_short(reason)
    )


def drop_expired(session: Session, *, now: datetime) -> int:
    """Mark pending rows past their expiry ``dropped``: a late reminder is worse than none."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            col(OutboxMessage.status) == PENDING,
            col(OutboxMessage.expires_at).is_not(None),
            col(OutboxMessage.expires_at) <= now,
        )
        .values(status=DROPPED, error="expired")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def record_unreachable(session: Session, *, chat_id: int, reason: str, now: datetime) -> int:
    """Mark the account(s) of this private chat unreachable (blocked, chat gone)."""
    result = session.execute(
        update(TelegramAccount)
        .where(col(TelegramAccount.chat_id) == chat_id)
        .values(blocked_at=now, block_reason=_short(reason, 200))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def status_counts(session: Session, *, round_id: int | None = None) -> dict[str, int]:
    """How many outbox rows are in each status (of a round, or all)."""
    statement = select(OutboxMessage.status, func.count()).group_by(col(OutboxMessage.status))
    if round_id is not None:
        statement = statement.where(col(OutboxMessage.round_id) == round_id)
    return {status: int(count) for status, count in session.exec(statement).all()}


def _short(text: str | None, limit: int = MAX_ERROR_LENGTH) -> str | None:
    return None if text is None else text[:limit]


def release(session: Session, *, message_id: int, worker: str, not_before: datetime) -> bool:
    """Give a claimed row back unchanged (no attempt counted), to go out at ``not_before``."""
    return _finish(
        session,
        message_id=message_id,
        worker=worker,
        status=PENDING,
        not_before=not_before,
        claimed_by=None,
        claimed_at=None,
    )
