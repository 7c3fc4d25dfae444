"""Enqueuing a county's reminders in bulk: the same dedup rule as one at a time, in chunks."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import select

from jobs.runner import enqueue_all
from storage import outbox
from storage.db import transaction
from storage.models import OutboxMessage
from tests.test_outbox import NOW, message, rows


def test_bulk_enqueue_stores_each_new_key_once_across_chunks(engine: Engine) -> None:
    count = outbox.ENQUEUE_CHUNK + 7  # more than one statement
    first = [message(chat_id=10_000 + n) for n in range(count)]
    assert enqueue_all(engine, first, now=NOW) == count
    # A second planner (or the same one a minute later) adds only what is new.
    again = [*first[:5], message(chat_id=99), message(chat_id=99)]
    assert enqueue_all(engine, again, now=NOW) == 1
    stored = rows(engine)
    assert len(stored) == count + 1
    assert len({row.dedup_key for row in stored}) == len(stored)
    assert {row.status for row in stored} == {"pending"}


def test_bulk_enqueue_keeps_every_column_as_one_at_a_time_does(engine: Engine) -> None:
    expires = NOW.replace(hour=9)
    single = message(chat_id=1, slot="one", expires_at=expires, payload={"text": "甲", "x": [1]})
    bulk = message(chat_id=2, slot="one", expires_at=expires, payload={"text": "甲", "x": [1]})
    with transaction(engine) as session:
        outbox.enqueue(session, message=single, now=NOW)
        outbox.enqueue_many(session, messages=[bulk], now=NOW)
    with transaction(engine) as session:
        a, b = session.exec(select(OutboxMessage).order_by(OutboxMessage.chat_id)).all()
        skip = {"id", "dedup_key", "chat_id"}
        assert a.model_dump(exclude=skip) == b.model_dump(exclude=skip)
