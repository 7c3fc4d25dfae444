"""整改台账: 2–3 key problems per branch, closed by the township after checking (issue 9 point 10).

docs/rules.md §12 (seed 002 三(三)1: 确定2-3个突出问题; seed 003 三(一): 逐项验收"销号").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session, select

from storage.models import AuditLog, LedgerCheck, RectificationItem
from tests.test_bot_reports import ORGANIZER, SECRETARY, phone_of
from tests.test_bot_reports import town as town  # the fixture

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness
    from tests.fakebot import Phone


async def _add(phone: Phone, matter: str) -> str:
    await phone.send("/rectify")
    await phone.tap("➕ 新增整改事项")
    await phone.send(matter)
    await phone.send("逐项整改")
    await phone.send("4月30日")
    return (await phone.send("李书记")).text


async def test_the_secretary_is_told_how_many_key_problems_are_still_needed(
    town: BotHarness,
) -> None:
    secretary = phone_of(town, "secretary", SECRETARY)
    assert "还需要 2 个" in (await secretary.send("/rectify")).text
    assert "还需要 1 个" in await _add(secretary, "三会一课记录不全")
    done = await _add(secretary, "党员发展程序不规范")
    assert "还需要" not in done and "最多" not in done
    assert "最多 3 个" in await _add(secretary, "阵地建设滞后") + await _add(secretary, "第四个")


async def test_only_the_township_closes_a_line_and_says_what_it_checked(
    town: BotHarness,
) -> None:
    secretary = phone_of(town, "secretary", SECRETARY)
    await _add(secretary, "三会一课记录不全")
    with Session(town.engine) as session:
        item = session.exec(select(RectificationItem)).one()
    forged = await secretary.tap(callback_data=f"rp:k:{item.id}")
    assert forged.alert and "支部不能自行销号" in forged.alert

    organizer = phone_of(town, "organizer", ORGANIZER)
    await organizer.send("/rectify 红星村")
    assert "验收意见" in (await organizer.tap("销号 1")).text
    closed = await organizer.send("抽查了三个月的会议记录，已补齐")
    assert "已销号" in closed.text and "验收意见：抽查了三个月的会议记录" in closed.text
    with Session(town.engine) as session:
        check = session.exec(select(LedgerCheck)).one()
        closed_item = session.get(RectificationItem, item.id)
        audit = session.exec(
            select(AuditLog).where(AuditLog.action == "rectify.close", AuditLog.outcome == "ok")
        ).one()
    assert check.checked_by == town.world.people["organizer"]
    assert closed_item is not None and closed_item.closed_by == town.world.people["organizer"]
    assert audit.detail["note"] == "抽查了三个月的会议记录，已补齐"
