"""The secretary's transcript (issue 14): register, /surveys, /tally, /coverage, /remind →
the WeChat notice, the invitation links with their QR codes, and a reminder from the jobs.

Drives the real Application (with its jobs) against the fake Bot API and stores every step
in tests/transcripts/secretary.txt (harness: tests/support_transcripts.py). Regenerate after
a reviewed change with ``CEPING_UPDATE_TRANSCRIPTS=1``.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

import storage.rounds
from tests.fakebot.phone import keyboard_texts
from tests.support_transcripts import Transcript

if TYPE_CHECKING:
    from tests.bot_fixtures import FakeClock, World

pytest_plugins = ["tests.bot_fixtures"]

SECRETARY, ORGANIZER = 3002, 3001
NOTICE, LINKS = "📋 生成微信群通知", "🔗 未登记人员邀请链接"


@pytest.fixture(autouse=True)
def fixed_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens counted, not random, from the seeded world on: the file is the same each run."""
    serial = itertools.count(1)
    monkeypatch.setattr(storage.rounds, "_new_token", lambda: f"transcript{next(serial):012d}")


async def test_secretary(engine: Engine, clock: FakeClock, world: World) -> None:
    """A secretary chases their branch: the notice to paste, the links to send, a reminder."""
    from tests.bot_fixtures import started_bot

    async with started_bot(engine, clock, world, with_jobs=True) as bot:
        phone = bot.phone(SECRETARY, name="李书记")
        talk = Transcript("secretary", phone)
        asked = await talk.send(f"/start {world.tokens['secretary']}")
        assert asked.text  # a secretary confirms with the roster phone
        phone.phone_number = world.phones["secretary"]
        bound = await talk.share_phone()
        assert "李书记同志" in bound.texts[0]

        await talk.send("/surveys")
        tally = await talk.send("/tally")
        assert "红星村党支部" in tally.text
        assert "\n建议等次：" not in tally.text  # decided grades only, never a proposal
        assert NOTICE in phone.buttons and LINKS in phone.buttons

        coverage = await talk.send("/coverage")
        text = coverage.text
        assert text.count("李书记") == 1  # two surveys owed, one line
        assert "· 李书记：满意度测评、支部自评" in text
        assert "· 张党员：满意度测评（未登记）" in text
        assert "陈检查" not in text and "王组织" not in text  # township staff
        assert "距目标还差 5 人" in text
        assert "未注册" not in text

        offer = await talk.send("/remind")
        assert offer.text.startswith("李书记同志，测评提醒由组织员统一发送。")
        assert phone.buttons == [NOTICE, LINKS]

        await talk.tap(NOTICE)
        notice = phone.history[-1]["text"]
        assert notice.startswith("【红星村党支部】测评通知\n各位同志：")
        assert "满意度测评：请于3月16日（周一）09:00前完成。" in notice
        assert "目前已参评0人，目标5人，还差5人。" in notice
        assert "尚未参评：张党员、李书记、赵党员" in notice
        assert "尚未完成自评的班子成员：李书记" in notice
        assert f"https://t.me/{bot.settings.bot_username}" in notice
        assert not re.search(r"(^|\s)/[a-z]", notice), "no bot commands in a group notice"
        assert "<" not in notice and "陈检查" not in notice and "未注册" not in notice

        links = await talk.tap(LINKS)
        assert "红星村党支部未登记人员的邀请链接（2人）" in links.texts[0]
        assert "张党员：https://t.me/" in links.texts[0]
        photos = [r for r in links.records if r.method == "sendPhoto"]
        assert [p.params.get("caption", "")[:4] for p in photos] == ["张党员（", "赵党员（"]

        organizer = await bot.register(ORGANIZER, "organizer")
        since = bot.api.mark()
        await organizer.send("/remind")
        params = await bot.api.wait_for_request(
            "sendMessage",
            lambda p: p["chat_id"] == SECRETARY and p["text"].startswith("【"),
            since=since,
        )
        reminder = params["text"]
        assert "（还有约14天）" in reminder  # days, not hours, beyond 48 hours
        assert "距离目标还差5人" in reminder  # the same gap as /coverage
        talk.blocks.append(
            "\n".join(
                [f"=== {len(talk.blocks) + 1}", "<<< a reminder from the jobs", reminder]
                + [" ".join(f"[{label}]" for label in row) for row in keyboard_texts(params)]
            )
        )
        again = await talk.tap(NOTICE)  # the button under the reminder
        assert again.texts[-1] == notice
        talk.check()
