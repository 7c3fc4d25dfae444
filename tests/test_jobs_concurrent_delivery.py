"""The running jobs send several outbox rows at once: each still exactly once, limits kept."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import Engine
from telegram import Bot

from jobs.runner import RUNNING_POLICY
from tests.factories import FakeTime
from tests.fakebot.server import FakeBotApi
from tests.test_jobs_delivery import START, deliverer, open_chats, put, statuses


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime(START)


@pytest.fixture
async def bot(fake_api: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(fake_api.token, base_url=fake_api.base_url) as bot:
        yield bot


async def test_eight_sends_in_flight_deliver_each_row_once_and_space_one_chat(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    assert RUNNING_POLICY.concurrency > 1  # what ceping run and ceping jobs use
    chats = [4000 + n for n in range(40)]
    open_chats(fake_api, *chats)
    put(engine, clock, *chats)
    for slot in ("b", "c"):  # two more for one chat: the per-chat bucket must space them
        put(engine, clock, chats[0], slot=slot)
    jobs = deliverer(engine, bot, clock, batch_size=100, concurrency=RUNNING_POLICY.concurrency)
    report = await jobs.deliver_until_idle()
    assert report.sent == len(chats) + 2
    sent = Counter(p["chat_id"] for p in fake_api.calls("sendMessage"))
    assert sent == Counter({**{chat: 1 for chat in chats}, chats[0]: 3})
    assert set(statuses(engine).values()) == {"sent"}
    # 42 sends against a bucket of 30 a second: what the global limit makes wait, waits.
    assert sum(clock.slept) >= 1.0


async def test_a_429_while_others_are_in_flight_leaves_nothing_lost(
    engine: Engine, fake_api: FakeBotApi, bot: Bot, clock: FakeTime
) -> None:
    chats = [5000 + n for n in range(10)]
    open_chats(fake_api, *chats)
    put(engine, clock, *chats)
    fake_api.fail_next("sendMessage", 429, retry_after=3)
    jobs = deliverer(engine, bot, clock, concurrency=RUNNING_POLICY.concurrency)
    first = await jobs.deliver_until_idle()
    assert first.retried == 1 and first.sent + first.deferred == len(chats) - 1
    clock.advance(seconds=3)
    await jobs.deliver_until_idle()
    sent = Counter(p["chat_id"] for p in fake_api.calls("sendMessage") if p)
    assert set(statuses(engine).values()) == {"sent"}
    assert all(sent[chat] >= 1 for chat in chats)
    assert all(len(fake_api.chat(chat)) == 1 for chat in chats)  # delivered once each
