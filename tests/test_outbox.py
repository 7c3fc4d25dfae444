"""The outbox queue: each message once by its dedup key, claimed by one worker at a time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import select

from storage import outbox
from storage.db import make_engine, transaction
from storage.models import OutboxMessage, TelegramAccount
from storage.outbox import NewMessage
from tests.factories import add_org, add_person

NOW = datetime(2027, 3, 18, 2, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def message(chat_id: int = 1001, slot: str = "s1", **changes: object) -> NewMessage:
    """A reminder to one chat, due now unless told otherwise."""
    values: dict[str, object] = {
        "round_id": None,
        "person_id": None,
        "chat_id": chat_id,
        "kind": "reminder",
        "slot": slot,
        "payload": {"text": "请完成测评"},
        "not_before": NOW,
        "expires_at": None,
    }
    values.update(changes)
    return NewMessage(**values)  # type: ignore[arg-type]


def enqueue(engine: Engine, *messages: NewMessage) -> list[bool]:
    with transaction(engine) as session:
        return [outbox.enqueue(session, message=m, now=NOW) for m in messages]


def claim(engine: Engine, worker: str, now: datetime = NOW, limit: int = 100) -> list[int]:
    with transaction(engine) as session:
        rows = outbox.claim_due(session, worker=worker, now=now, limit=limit, lease=LEASE)
        return [row.id for row in rows]  # type: ignore[misc]


def rows(engine: Engine) -> list[OutboxMessage]:
    with transaction(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


def test_the_same_reminder_enqueued_twice_is_stored_once(engine: Engine) -> None:
    assert enqueue(engine, message()) == [True]
    assert enqueue(engine, message(payload={"text": "另一个文本"})) == [False]
    stored = rows(engine)
    assert len(stored) == 1
    assert stored[0].dedup_key == "-:c1001:reminder:s1"
    assert stored[0].payload == {"text": "请完成测评"}
    assert stored[0].status == "pending"


def test_other_slots_and_recipients_are_other_messages(engine: Engine) -> None:
    assert enqueue(engine, message(), message(slot="s2"), message(chat_id=1002)) == [
        True,
        True,
        True,
    ]
    assert len(rows(engine)) == 3


def test_the_dedup_key_names_the_person_when_there_is_one(engine: Engine) -> None:
    with transaction(engine) as session:
        branch = add_org(session, "东村党支部")
        person = add_person(session, "张三", branch, "member")
    assert message(person_id=person.id).dedup_key == f"-:{person.id}:reminder:s1"
    assert enqueue(engine, message(person_id=person.id), message(person_id=person.id)) == [
        True,
        False,
    ]


def test_only_due_rows_are_claimed_and_only_once(engine: Engine) -> None:
    enqueue(engine, message(slot="now"), message(slot="later", not_before=NOW + timedelta(hours=1)))
    first = claim(engine, "worker-a")
    assert len(first) == 1
    assert claim(engine, "worker-b") == []
    (row,) = [r for r in rows(engine) if r.id == first[0]]
    assert (row.status, row.claimed_by, row.slot) == ("sending", "worker-a", "now")
    assert claim(engine, "worker-b", now=NOW + timedelta(hours=1)) != []


def test_a_row_left_sending_by_a_dead_worker_is_claimed_again_after_the_lease(
    engine: Engine,
) -> None:
    enqueue(engine, message())
    (row_id,) = claim(engine, "dead-worker")
    assert claim(engine, "worker-b", now=NOW + LEASE - timedelta(seconds=1)) == []
    assert claim(engine, "worker-b", now=NOW + LEASE + timedelta(seconds=1)) == [row_id]
    with transaction(engine) as session:
        # The dead worker woke up: its claim is gone, so it cannot overwrite the new owner.
        assert not outbox.mark_sent(
            session, message_id=row_id, worker="dead-worker", telegram_message_id=1, now=NOW
        )
        assert outbox.mark_sent(
            session, message_id=row_id, worker="worker-b", telegram_message_id=7, now=NOW
        )
    (row,) = rows(engine)
    assert (row.status, row.telegram_message_id, row.attempts) == ("sent", 7, 1)


def test_expired_pending_rows_are_dropped_not_sent(engine: Engine) -> None:
    enqueue(
        engine,
        message(slot="expired", expires_at=NOW),
        message(slot="alive", expires_at=NOW + timedelta(hours=1)),
        message(slot="forever"),
    )
    with transaction(engine) as session:
        assert outbox.drop_expired(session, now=NOW) == 1
    by_slot = {r.slot: r for r in rows(engine)}
    assert (by_slot["expired"].status, by_slot["expired"].error) == ("dropped", "expired")
    assert by_slot["alive"].status == "pending"
    assert by_slot["forever"].status == "pending"


def test_retry_puts_the_row_back_with_its_attempt_and_error(engine: Engine) -> None:
    enqueue(engine, message())
    (row_id,) = claim(engine, "w")
    later = NOW + timedelta(seconds=30)
    with transaction(engine) as session:
        assert outbox.mark_retry(
            session, message_id=row_id, worker="w", not_before=later, error="NetworkError"
        )
    (row,) = rows(engine)
    assert (row.status, row.attempts, row.error, row.claimed_by) == (
        "pending",
        1,
        "NetworkError",
        None,
    )
    assert row.not_before == later
    assert claim(engine, "w") == []
    assert claim(engine, "w", now=later) == [row_id]


def test_a_permanent_failure_marks_the_account_unreachable(engine: Engine) -> None:
    with transaction(engine) as session:
        branch = add_org(session, "东村党支部")
        person = add_person(session, "张三", branch, "member")
        session.add(
            TelegramAccount(
                person_id=person.id,  # type: ignore[arg-type]
                telegram_user_id=1001,
                chat_id=1001,
                bound_via="invitation",
            )
        )
    enqueue(engine, message(person_id=person.id))
    (row_id,) = claim(engine, "w")
    with transaction(engine) as session:
        assert outbox.mark_failed(session, message_id=row_id, worker="w", error="forbidden")
        assert outbox.record_unreachable(session, chat_id=1001, reason="forbidden", now=NOW) == 1
        assert outbox.status_counts(session) == {"failed": 1}
        account = session.exec(select(TelegramAccount)).one()
        assert (account.blocked_at, account.block_reason) == (NOW, "forbidden")


def test_two_workers_on_two_engines_claim_disjoint_rows(engine: Engine, database_url: str) -> None:
    """Two processes on one database: every row goes to exactly one of them."""
    enqueue(engine, *(message(chat_id=2000 + n, slot=f"s{n}") for n in range(60)))
    other = make_engine(database_url)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def work(name: str, worker_engine: Engine) -> None:
        barrier.wait()
        while batch := claim(worker_engine, name, limit=7):
            claimed[name] += batch

    try:
        threads = [
            threading.Thread(target=work, args=("a", engine)),
            threading.Thread(target=work, args=("b", other)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        other.dispose()
    all_ids = {r.id for r in rows(engine)}
    assert set(claimed["a"]).isdisjoint(claimed["b"])
    assert sorted(claimed["a"] + claimed["b"]) == sorted(all_ids)
