"""Delivering the outbox through the fake Bot API: limits, retries, 429, blocked users."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import select
from telegram import Bot

from jobs.delivery import Deliverer, DeliveryPolicy
from jobs.limiter import OutboxLimiter, TokenBucket
from jobs.runner import enqueue_due
from storage import outbox
from storage.db import make_engine, transaction
from storage.models import TelegramAccount
from storage.outbox import NewMessage
from tests.factories import (
    ZONE,
    FakeTime,
    build_reminder_township,
    local,
    outbox_rows,
    same_deadline,
    texts_for,
)
from tests.fakebot.server import FakeBotApi

START = local(2027, 3, 16, 10)


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime(START)


@pytest.fixture
async def bot(fake_api: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(fake_api.token, base_url=fake_api.base_url) as bot:
        yield bot


def deliverer(
    engine: Engine, bot: Bot, clock: FakeTime, worker: str = "w1", **policy: object
) -> Deliverer:
    return Deliverer(
        engine,
        bot,
        zone=ZONE,
        clock=clock,
        worker=worker,
        limiter=OutboxLimiter(clock=clock.seconds),
        sleep=clock.sleep,
        policy=DeliveryPolicy(**policy),  # type: ignore[arg-type]
    )


def put(engine: Engine, clock: FakeTime, *chats: int, **changes: object) -> None:
    """Enqueue one message to each chat, due now."""
    with transaction(engine) as session:
        for chat in chats:
            values: dict[str, object] = {
                "round_id": None,
                "person_id": None,
                "chat_id": chat,
                "kind": "reminder",
                "slot": "s",
                "payload": {"text": f"请完成测评 {chat}"},
                "not_before": clock.now,
            }
            values.update(changes)
            outbox.enqueue(session, message=NewMessage(**values), now=clock.now)  # type: ignore[arg-type]


def open_chats(api: FakeBotApi, *chats: int) -> None:
    for chat in chats:
        api.user(chat).start_chat()


def statuses(engine: Engine) -> dict[int, str]:
    return {row.chat_id: row.status for row in outbox_rows(engine)}


# --- The limiter ------------------------------------------------------------------------------


def test_thirty_chats_at_once_then_the_global_limit_holds() -> None:
    now = [0.0]
    limiter = OutboxLimiter(clock=lambda: now[0])
    assert [limiter.reserve(chat) for chat in range(30)] == [0.0] * 30
    assert limiter.reserve(30) == pytest.approx(1 / 30)


def test_one_chat_gets_one_message_a_second() -> None:
    now = [0.0]
    limiter = OutboxLimiter(clock=lambda: now[0])
    assert limiter.reserve(7) == 0
    assert limiter.reserve(7) == pytest.approx(1.0)
    now[0] = 5.0
    assert limiter.reserve(7) == 0


def test_a_bucket_refills_with_time() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2, capacity=2, clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [0, 0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] = 10
    assert bucket.take() == 0


# --- Sending ----------------------------------------------------------------------------------


async def test_due_messages_arrive_and_are_marked_sent(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    open_chats(fake_api, 11, 12, 13)
    put(engine, clock, 11, 12, 13)
    put(engine, clock, 14, slot="later", not_before=clock.now + timedelta(hours=1))
    report = await deliverer(engine, bot, clock).deliver_until_idle()
    assert report.sent == 3
    assert [p["chat_id"] for p in fake_api.calls("sendMessage")] == [11, 12, 13]
    sent = [r for r in outbox_rows(engine) if r.status == "sent"]
    assert {r.chat_id: r.telegram_message_id for r in sent} == {
        chat: fake_api.chat(chat)[-1]["message_id"] for chat in (11, 12, 13)
    }
    assert statuses(engine)[14] == "pending"


async def test_the_resume_button_reaches_the_phone(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    open_chats(fake_api, 11)
    markup = {"inline_keyboard": [[{"text": "继续填写", "callback_data": "s:42"}]]}
    put(engine, clock, 11, payload={"text": "请完成测评", "reply_markup": markup})
    await deliverer(engine, bot, clock).deliver_until_idle()
    assert fake_api.chat(11)[-1]["reply_markup"] == markup


async def test_messages_to_one_chat_are_spaced_a_second_apart(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    open_chats(fake_api, 11)
    for slot in ("a", "b", "c"):
        put(engine, clock, 11, slot=slot)
    await deliverer(engine, bot, clock).deliver_until_idle()
    assert fake_api.count("sendMessage") == 3
    assert clock.slept == [pytest.approx(1.0), pytest.approx(1.0)]


async def test_a_429_is_waited_out_and_the_message_still_arrives(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    open_chats(fake_api, 11, 12)
    put(engine, clock, 11, 12)
    fake_api.fail_next("sendMessage", 429, retry_after=3)
    jobs = deliverer(engine, bot, clock)

    first = await jobs.deliver_until_idle()
    assert (first.sent, first.retried, first.deferred) == (0, 1, 1)
    (row,) = [r for r in outbox_rows(engine) if r.chat_id == 11]
    assert (row.status, row.attempts, row.not_before) == (
        "pending",
        0,
        START + timedelta(seconds=3),
    )

    clock.advance(seconds=2)
    assert (await jobs.deliver_until_idle()).sent == 0  # still inside retry_after
    clock.advance(seconds=1)
    assert (await jobs.deliver_until_idle()).sent == 2
    assert len(fake_api.chat(11)) == 1
    assert len(fake_api.chat(12)) == 1
    assert statuses(engine) == {11: "sent", 12: "sent"}


async def test_network_errors_are_retried_with_growing_waits_then_given_up(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    open_chats(fake_api, 11)
    put(engine, clock, 11)
    fake_api.drop_next("sendMessage", times=5)
    jobs = deliverer(engine, bot, clock, max_attempts=3, first_backoff=timedelta(seconds=10))

    await jobs.deliver_until_idle()
    (row,) = outbox_rows(engine)
    assert (row.status, row.attempts, row.not_before) == (
        "pending",
        1,
        START + timedelta(seconds=10),
    )
    clock.advance(seconds=10)
    await jobs.deliver_until_idle()
    (row,) = outbox_rows(engine)
    assert (row.attempts, row.not_before) == (2, clock.now + timedelta(seconds=20))
    clock.advance(seconds=20)
    await jobs.deliver_until_idle()
    (row,) = outbox_rows(engine)
    assert row.status == "failed"
    assert row.error is not None and row.error.startswith("gave up after 3 attempts")
    clock.advance(hours=1)
    await jobs.deliver_until_idle()
    assert fake_api.count("sendMessage") == 3


async def test_a_dropped_connection_is_retried_and_the_message_arrives_once(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    open_chats(fake_api, 11)
    put(engine, clock, 11)
    fake_api.drop_next("sendMessage")
    jobs = deliverer(engine, bot, clock)
    await jobs.deliver_until_idle()
    clock.advance(minutes=1)
    await jobs.deliver_until_idle()
    assert len(fake_api.chat(11)) == 1
    assert statuses(engine) == {11: "sent"}


async def test_a_user_who_blocked_the_bot_is_recorded_and_not_retried(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    deadline = local(2027, 3, 20, 20)
    town = build_reminder_township(
        engine, opened=local(2027, 3, 15, 9), deadlines=same_deadline(deadline)
    )
    chat = town.chat_of("党员甲")
    open_chats(fake_api, *town.chats.values())
    fake_api.block(chat)
    clock.now = started = local(2027, 3, 17, 20)
    enqueue_due(engine, now=clock.now, zone=ZONE)
    jobs = deliverer(engine, bot, clock)
    await jobs.deliver_until_idle()

    (row,) = [r for r in outbox_rows(engine, "reminder") if r.chat_id == chat]
    assert row.status == "failed"
    assert row.error is not None and "blocked by the user" in row.error
    with transaction(engine) as session:
        account = session.exec(select(TelegramAccount).where(TelegramAccount.chat_id == chat)).one()
        assert account.blocked_at is not None and started <= account.blocked_at <= clock.now
        assert account.block_reason is not None and "blocked" in account.block_reason

    # Later slots skip the blocked person, and their secretary sees why.
    calls_to_blocked = sum(1 for p in fake_api.calls("sendMessage") if p["chat_id"] == chat)
    clock.now = local(2027, 3, 19, 20)
    enqueue_due(engine, now=clock.now, zone=ZONE)
    await jobs.deliver_until_idle()
    assert (
        sum(1 for p in fake_api.calls("sendMessage") if p["chat_id"] == chat)
        == calls_to_blocked
        == 1
    )
    latest = texts_for(engine, town.chat_of("李书记"), "secretary_reminder")[-1]
    assert "党员甲" in latest and "屏蔽" not in latest  # no internal notes in a reminder


async def test_an_unknown_chat_fails_for_good_with_the_reason(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    put(engine, clock, 99)
    await deliverer(engine, bot, clock).deliver_until_idle()
    (row,) = outbox_rows(engine)
    assert row.status == "failed"
    assert row.error is not None and "chat not found" in row.error.lower()
    assert fake_api.count("sendMessage") == 1


async def test_a_reminder_past_its_deadline_is_dropped_not_sent(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    open_chats(fake_api, 11)
    put(engine, clock, 11, expires_at=clock.now + timedelta(minutes=1))
    clock.advance(minutes=2)
    report = await deliverer(engine, bot, clock).deliver_until_idle()
    assert report.dropped == 1
    assert statuses(engine) == {11: "dropped"}
    assert fake_api.count("sendMessage") == 0


async def test_quiet_hours_hold_a_message_until_eight(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    open_chats(fake_api, 11)
    clock.now = local(2027, 3, 16, 20, 59)
    put(engine, clock, 11, payload={"text": "晚安", "quiet_hours": ["21:00", "08:00"]})
    clock.advance(minutes=2)  # a retry or a slow queue pushed it past 21:00
    jobs = deliverer(engine, bot, clock)
    assert (await jobs.deliver_until_idle()).deferred == 1
    (row,) = outbox_rows(engine)
    assert (row.status, row.not_before) == ("pending", local(2027, 3, 17, 8))
    clock.now = local(2027, 3, 17, 8)
    assert (await jobs.deliver_until_idle()).sent == 1


# --- Two processes --------------------------------------------------------------------------


async def test_two_processes_on_one_database_send_each_message_once(
    engine: Engine, database_url: str, fake_api: FakeBotApi, bot: Bot, clock: FakeTime, backend: str
) -> None:
    """Two schedulers and two delivery loops, each on its own engine (PG: concurrently)."""
    town = build_reminder_township(
        engine, opened=local(2027, 3, 15, 9), deadlines=same_deadline(local(2027, 3, 20, 20))
    )
    open_chats(fake_api, *town.chats.values())
    chats = [3000 + n for n in range(40)]
    open_chats(fake_api, *chats)
    put(engine, clock, *chats)
    other = make_engine(database_url)
    try:
        clock.now = local(2027, 3, 17, 20)
        planners = [
            asyncio.to_thread(enqueue_due, e, now=clock.now, zone=ZONE) for e in (engine, other)
        ]
        one = deliverer(engine, bot, clock, worker="process-1", batch_size=5)
        two = deliverer(other, bot, clock, worker="process-2", batch_size=5)
        if backend == "postgresql":
            added = await asyncio.gather(*planners)
            await asyncio.gather(one.deliver_until_idle(), two.deliver_until_idle())
        else:  # SQLite has one writer at a time: the same story, one after the other
            added = [await planners[0], await planners[1]]
            await one.deliver_until_idle()
            await two.deliver_until_idle()
    finally:
        other.dispose()
    rows = outbox_rows(engine)
    assert sum(added) == len(rows) - len(chats)  # each planned message inserted by one planner
    assert all(r.status == "sent" for r in rows)
    sent_to = [p["chat_id"] for p in fake_api.calls("sendMessage")]
    assert len(sent_to) == len(rows) == len({r.dedup_key for r in rows})
    per_row_chat: dict[int, int] = {}
    for row in rows:
        per_row_chat[row.chat_id] = per_row_chat.get(row.chat_id, 0) + 1
    assert {chat: sent_to.count(chat) for chat in per_row_chat} == per_row_chat
    if backend == "postgresql":
        assert {r.claimed_by for r in rows} == {"process-1", "process-2"}
