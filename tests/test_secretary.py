"""Secretaries and organizers chasing participation (issue 14): /coverage, /remind, the
WeChat notice and the invitation links of a branch's unregistered people.

The real Application runs against the fake Bot API; the world (tests/bot_fixtures.py) has
青山镇党委 with 红星村党支部, whose secretary 李书记 is also a member and a committee member
(two assignments), and the township's 陈检查 (inspects the village) and 王组织 (scores it).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlmodel import Session

from jobs.planner import KIND_SECRETARY_REMINDER, plan_manual
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
    row = next(line for line in table.text.splitlines() if line.startswith("红星村"))
    assert row.split()[-1] == "5", table.text
