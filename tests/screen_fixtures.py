"""Helpers for the meeting screen's tests: the service on the test bot, initData, a ballot."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bot.screen.auth import sign_init_data
from bot.screen.web import ScreenService
from storage import summary
from storage.announcements import announce, snapshot
from storage.db import transaction
from storage.models import SatisfactionBallots, SatisfactionTally
from storage.tallies import round_tally
from surveys.instruments import get_instrument
from tests.fakebot import Phone

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness

PUBLIC_URL = "https://screen.example.org"


def service_of(bot: BotHarness) -> ScreenService:
    """The screen on the test bot's database, clock and token."""
    return ScreenService(
        engine=bot.engine,
        bot_token=bot.settings.require_token(),
        clock=bot.clock,
        zone=bot.settings.zone,
        bot_username=lambda: bot.api.username,
    )


def init_data(bot: BotHarness, user_id: int, *, token: str | None = None) -> str:
    """The initData Telegram would give user_id's Mini App now (signed with ``token``)."""
    user = {"id": user_id, "first_name": "用户", "language_code": "zh-hans"}
    fields = {
        "auth_date": str(int(bot.clock.now.timestamp())),
        "query_id": "AAE-test",
        "user": json.dumps(user, ensure_ascii=False, separators=(",", ":")),
    }
    return sign_init_data(fields, token or bot.settings.require_token())


async def answer_satisfaction(phone: Phone) -> None:
    """/surveys, the satisfaction survey, the first option of every question, submit."""
    await phone.send("/surveys")
    await phone.tap(next(b for b in phone.buttons if "满意度" in b))
    for _ in range(20):
        if "📨 提交" in phone.buttons:
            break
        skip = next((b for b in phone.buttons if "跳过" in b), None)
        await phone.tap(skip or phone.buttons[0])
    await phone.tap("📨 提交")
    thanks = await phone.tap("✅ 确认提交")
    assert "提交成功" in thanks.text, thanks.texts


def seed_ballots(bot: BotHarness, ballots: int, *, publish: bool = True) -> None:
    """The village's counters as if ``ballots`` people chose 满意 everywhere."""
    village, round_id = bot.world.orgs["village"], bot.world.round_id
    with transaction(bot.engine) as session:
        session.add(SatisfactionBallots(round_id=round_id, org_id=village, ballots=ballots))
        for item in get_instrument("satisfaction").items:
            if item.options:
                session.add(
                    SatisfactionTally(
                        round_id=round_id,
                        org_id=village,
                        item_id=item.id,
                        option_id=item.options[0].id,
                        count=ballots,
                    )
                )
        session.flush()
        summary.rebuild(session, round_id=round_id)  # what a fold would have kept beside them
    if publish:
        publish_village(bot)


def publish_village(bot: BotHarness) -> None:
    """What /publish stores for the village now (the announced record the screen shows)."""
    village, round_id, now = bot.world.orgs["village"], bot.world.round_id, bot.clock.now
    with transaction(bot.engine) as session:
        tally = round_tally(
            session, round_id=round_id, org_ids=[village], distribution=True, now=now
        )
        branch = tally.branch(village)
        assert branch is not None
        announce(
            session, tally=snapshot(branch, round_id=round_id, now=now), person_id=None, now=now
        )
