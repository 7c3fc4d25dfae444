"""Issue 10, items 6 and 7: long lists split within Telegram's limit; long texts refused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine
from sqlmodel import func, select

from storage.db import transaction
from storage.models import Answer, Organization, Person, PersonRole, Veto
from storage.rounds import sync_assignments
from storage.widths import TextTooLong, column_width, instrument_width_problems
from surveys.i18n import t
from surveys.instruments import bundled_instruments, get_instrument
from surveys.text import TELEGRAM_MESSAGE_LIMIT, utf16_length

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness

MANY = 400


async def test_coverage_of_a_branch_with_400_non_respondents_arrives_whole(
    bot: BotHarness,
) -> None:
    village = bot.world.orgs["village"]
    names = [f"党员{n:03d}号长名字测试" for n in range(MANY)]
    with transaction(bot.engine) as session:
        for n, name in enumerate(names):
            person = Person(name=name, phone=f"139{n:08d}", org_id=village)
            session.add(person)
            session.flush()
            assert person.id is not None
            session.add(PersonRole(person_id=person.id, org_id=village, role="member"))
        session.flush()
        sync_assignments(session, bot.world.round_id)
    organizer = await bot.register(8001, "organizer")

    reply = await organizer.send("/coverage 红星村党支部")

    assert not reply.failed, [r.error for r in reply.failed]
    assert len(reply.texts) >= 2
    assert all(utf16_length(text) <= TELEGRAM_MESSAGE_LIMIT for text in reply.texts)
    joined = "\n".join(reply.texts)
    assert all(name in joined for name in names)


# --- Item 7: text longer than its column ------------------------------------------------------


async def test_a_600_character_veto_note_is_refused_politely_and_nothing_is_written(
    bot: BotHarness,
) -> None:
    organizer = await bot.register(8002, "organizer")
    note = "说" * 600

    reply = await organizer.send(f"/veto 红星村 违纪违法党员 {note}")

    assert not reply.failed and not reply.errors
    assert reply.text == t("hardening.text_too_long", length=600, limit=500)
    with bot.session() as session:
        assert session.exec(select(func.count()).select_from(Veto)).one() == 0


def test_a_long_text_is_refused_before_sql_on_every_engine(engine: Engine) -> None:
    with pytest.raises(TextTooLong) as refused, transaction(engine) as session:
        session.add(Organization(name="村" * 121, category="village"))
    assert (refused.value.table, refused.value.column, refused.value.limit) == (
        "organization",
        "name",
        120,
    )
    with transaction(engine) as session:
        assert session.exec(select(func.count()).select_from(Organization)).one() == 0


def test_every_bundled_instrument_fits_its_columns() -> None:
    assert all(instrument_width_problems(i) == [] for i in bundled_instruments())


def test_an_instrument_whose_text_exceeds_its_column_is_named() -> None:
    instrument = get_instrument("satisfaction")
    wide = next(item for item in instrument.items if item.kind == "text")
    object.__setattr__(wide, "max_length", column_width(Answer, "text") + 1)  # type: ignore[operator]
    try:
        assert instrument_width_problems(instrument) == [f"{wide.id}: max_length 2001 > 2000"]
    finally:
        object.__setattr__(wide, "max_length", 500)
