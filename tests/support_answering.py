"""What the answering stories share: binding people, finding their drafts, reading buttons.

Not a test module: tests/test_bot_answering.py and tests/test_bot_inspecting.py import from here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session, select

from storage.db import transaction
from storage.models import (
    Assignment,
    Draft,
    SatisfactionTally,
    TelegramAccount,
)
from surveys.i18n import t
from tests.fakebot import Phone

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness, World


MEMBER, SECRETARY, INSPECTOR = 1001, 1002, 1005
PHASE_OVER = datetime(2999, 1, 1, tzinfo=UTC)  # after every deadline (storage.ballots)
STALE = t("answering.stale")
FORGED = t("answering.forged")


# --- Helpers ------------------------------------------------------------------------------


def bind(engine: Engine, world: World, key: str, user_id: int) -> None:
    """Seed the binding of a Telegram account to a person of the world."""
    with transaction(engine) as session:
        session.add(
            TelegramAccount(
                person_id=world.people[key],
                telegram_user_id=user_id,
                chat_id=user_id,
                bound_via="invitation",
            )
        )


async def registered(bot: BotHarness, key: str, user_id: int) -> Phone:
    """A phone bound to PEOPLE[key]."""
    bind(bot.engine, bot.world, key, user_id)
    return bot.phone(user_id)


def assignment_of(engine: Engine, world: World, key: str, instrument_id: str) -> Assignment:
    """The person's assignment of one instrument (the first branch when several)."""
    with Session(engine) as session:
        statement = (
            select(Assignment)
            .where(
                Assignment.person_id == world.people[key],
                Assignment.instrument_id == instrument_id,
            )
            .order_by(Assignment.org_id)  # type: ignore[arg-type]
        )
        return session.exec(statement).first()  # type: ignore[return-value]


def draft_of(engine: Engine, assignment_id: int) -> Draft | None:
    with Session(engine) as session:
        return session.get(Draft, assignment_id)


def callback_data_of(phone: Phone, text: str) -> tuple[int, str]:
    """(message id, callback data) of the button labelled text on the newest bot message."""
    message = phone.last_bot_message
    assert message is not None
    for row in message["reply_markup"]["inline_keyboard"]:
        for button in row:
            if button["text"] == text:
                return message["message_id"], button["callback_data"]
    raise AssertionError(f"no button {text!r} in {phone.screen}")


async def start_survey(phone: Phone, title_word: str = "满意度") -> None:
    """/surveys, then the start button of the survey whose title has title_word."""
    await phone.send("/surveys")
    button = next(b for b in phone.buttons if title_word in b)
    await phone.tap(button)


def keyboards(phone: Phone) -> list[bool]:
    """For each bot message, oldest first (the to-do list became the survey): any buttons left?"""
    bot_messages = [m for m in phone.history if m["from"]["id"] == phone.api.bot_id]
    return [bool(m.get("reply_markup", {}).get("inline_keyboard")) for m in bot_messages]


def tally(engine: Engine, item_id: str) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.exec(
            select(SatisfactionTally).where(SatisfactionTally.item_id == item_id)
        ).all()
        return {row.option_id: row.count for row in rows if row.count}
