"""Secretaries and organizers chasing participation (issue 14): /coverage, /remind, the
WeChat notice and the invitation links of a branch's unregistered people.

The real Application runs against the fake Bot API; the world (tests/bot_fixtures.py) has
青山镇党委 with 红星村党支部, whose secretary 李书记 is also a member and a committee member
(two assignments), and the township's 陈检查 (inspects the village) and 王组织 (scores it).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from jobs.planner import KIND_SECRETARY_REMINDER, plan_manual
from storage.models import AuditLog
from surveys.categories import Audience
from surveys.deadlines import deadline_words
from surveys.grading import participation_gap
from surveys.rules import Coverage, Target, coverage_for
from tests.support_answering import SECRETARY, registered

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness

pytest_plugins = ["tests.bot_fixtures"]

ORGANIZER = 1009


def _gap(text: str) -> int:
    """The branch's gap: the number in 距(离)目标还差N人 (spaces allowed around it)."""
    found = {int(n) for n in re.findall(r"距离?目标还差\s?(\d+)\s?人", text)}
    assert len(found) == 1, text
    return found.pop()


# --- The findings ----------------------------------------------------------------------------


async def test_coverage_lists_a_person_with_two_surveys_once(bot: BotHarness) -> None:
    """李书记 owes the satisfaction survey (党员) and the self-evaluation (班子成员): one line."""
    phone = await registered(bot, "secretary", SECRETARY)
    report = await phone.send("/coverage")
    assert report.text.count("李书记") == 1, report.text
    line = next(line for line in report.text.splitlines() if "李书记" in line)
    assert "满意度测评" in line and "支部自评" in line  # what he still owes, on his line


async def test_coverage_keeps_township_staff_out_of_a_branch(bot: BotHarness) -> None:
    """The inspector and the organizer belong to the 镇党委, not to 红星村's list."""
    phone = await registered(bot, "secretary", SECRETARY)
    organizer = await registered(bot, "organizer", ORGANIZER)
    for who in (phone, organizer):
        report = await who.send("/coverage 红星村")
        assert "陈检查" not in report.text and "王组织" not in report.text, report.text
        assert "张党员" in report.text and "赵党员" in report.text


async def test_coverage_and_the_secretary_reminder_give_the_same_gap(bot: BotHarness) -> None:
    """One formula: members and masses short of their targets (3 + 2 here)."""
    phone = await registered(bot, "secretary", SECRETARY)
    coverage = await phone.send("/coverage")
    with Session(bot.engine) as session:
        planned = plan_manual(session, now=bot.clock.now, zone=bot.settings.zone, force=True)
    reminder = next(m for m in planned if m.kind == KIND_SECRETARY_REMINDER)
    assert _gap(coverage.text) == _gap(reminder.payload["text"]) == 5
    organizer = await registered(bot, "organizer", ORGANIZER)
    table = await organizer.send("/coverage")
    row = next(line for line in table.text.splitlines() if line.endswith("红星村"))
    assert row.split()[0] == "5", table.text  # the gap first, the name last


# --- The secretary's buttons -----------------------------------------------------------------


def _audits(bot: BotHarness, action: str) -> list[tuple[int | None, str, str | None]]:
    with Session(bot.engine) as session:
        rows = session.exec(
            select(AuditLog).where(AuditLog.action == action).order_by(col(AuditLog.id))
        ).all()
        return [(row.actor_person_id, row.outcome, row.target) for row in rows]


async def test_only_the_branch_secretary_or_its_organizer_gets_the_notice(bot: BotHarness) -> None:
    """A member, an inspector of the branch and a forged id are refused politely, audited."""
    village, firm = bot.world.orgs["village"], bot.world.orgs["enterprise"]
    member = await registered(bot, "member", 1003)
    inspector = await registered(bot, "inspector", 1005)
    secretary = await registered(bot, "secretary", SECRETARY)
    await secretary.send("/coverage")
    for phone in (member, inspector):
        await phone.send("/start")
        refused = await phone.tap(callback_data=f"rp:wn:{village}")
        assert refused.answer is not None and refused.answer["show_alert"], refused
        assert not refused.messages or "测评通知" not in refused.text
    other = await secretary.tap(callback_data=f"rp:wl:{firm}")  # not his branch
    assert other.answer is not None and other.answer["show_alert"]
    people = bot.world.people
    assert _audits(bot, "secretary.notice") == [
        (people["member"], "refused", None),  # sees no branch at all: refused before the id
        (people["inspector"], "refused", f"org:{village}"),
    ]
    assert _audits(bot, "secretary.invites") == [(people["secretary"], "refused", f"org:{firm}")]
    organizer = await registered(bot, "organizer", ORGANIZER)
    await organizer.send("/coverage 东方机械厂")
    notice = await organizer.tap("📋 生成微信群通知")  # any branch in the organizer's scope
    assert notice.texts[-1].startswith("【东方机械厂党支部】测评通知")


async def test_invitation_links_are_fresh_audited_and_the_old_ones_stop(bot: BotHarness) -> None:
    """Two unregistered people: two new links (QR photos with names), the seeded ones expire."""
    secretary = await registered(bot, "secretary", SECRETARY)
    await secretary.send("/coverage")
    links = await secretary.tap("🔗 未登记人员邀请链接")
    assert "（2人）" in links.texts[0] and "陈检查" not in links.texts[0]
    photos = [r.params.get("caption", "") for r in links.records if r.method == "sendPhoto"]
    assert len(photos) == 2 and photos[0].startswith("张党员（红星村党支部）")
    assert _audits(bot, "secretary.invites") == [
        (bot.world.people["secretary"], "ok", f"org:{bot.world.orgs['village']}")
    ]
    old = await bot.phone(1003).send(f"/start {bot.world.tokens['member']}")
    assert "张党员同志" not in old.text  # the earlier link of 张党员 no longer registers
    token = re.search(r"张党员：https://t\.me/\w+\?start=(\S+)", links.texts[0])
    assert token is not None
    fresh = await bot.phone(1004).send(f"/start {token[1]}")
    assert "张党员同志" in fresh.text


async def test_remind_tells_the_organizer_who_is_reminded(bot: BotHarness) -> None:
    """Not just 已安排N条提醒: the names, by the organization the roster lists them in."""
    await registered(bot, "member", 1003)
    await registered(bot, "secretary", SECRETARY)
    organizer = await registered(bot, "organizer", ORGANIZER)
    done = await organizer.send("/remind")
    assert done.text.startswith("已安排")
    assert "红星村党支部：张党员、李书记" in done.text
    assert "青山镇党委：王组织" in done.text
    assert "以下书记另收到本支部参评情况：李书记" in done.text


# --- Pure pieces -----------------------------------------------------------------------------


def test_a_deadline_is_written_as_people_write_it() -> None:
    moment = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)  # 18:00 in Shanghai, a Saturday
    zone = ZoneInfo("Asia/Shanghai")
    assert deadline_words(moment, zone, "zh_CN") == "12月5日（周六）18:00前"
    assert deadline_words(moment, zone, "en") == "by Sat 5 December, 18:00"


def test_the_gap_counts_members_and_masses_only() -> None:
    def cov(audience: Audience, required: int, respondents: int) -> Coverage:
        target = Target(audience, required, Decimal(1), required)
        return coverage_for(target, respondents)

    coverage = {
        Audience.MEMBERS: cov(Audience.MEMBERS, 3, 1),
        Audience.MASSES: cov(Audience.MASSES, 2, 3),  # more than needed: not negative
        Audience.COMMITTEE: cov(Audience.COMMITTEE, 1, 0),
        Audience.INSPECTORS: cov(Audience.INSPECTORS, 1, 0),
    }
    assert participation_gap(coverage) == 2
