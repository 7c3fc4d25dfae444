"""The county review of decided grades, through the real Application (issue 9 point 8).

docs/rules.md §9 (seed 001 六: 镇党委评定、县委组织部审核; 附件4 上报县组织部): the organizer
reports decided grades with the 附件4 workbook (/report), a county reviewer approves or
returns one with a reason (/review), a return goes back to the committee with the reason,
and approved grades are made final (/finalize). Every step is a row of history and audited.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import TYPE_CHECKING

from openpyxl import load_workbook
from sqlmodel import Session, col, select

from storage.db import transaction
from storage.models import (
    AuditLog,
    GradeDecision,
    OutboxMessage,
    Person,
    PersonRole,
    ReviewEvent,
    TelegramAccount,
)
from storage.review import review_statuses
from surveys.review import ReviewState
from tests.test_bot_reports import MEMBER, ORGANIZER, REFUSED, phone_of
from tests.test_bot_reports import town as town  # the fixture

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness
    from tests.fakebot import Phone

REVIEWER = 2100


def _decide(bot: BotHarness, org: str, grade: str) -> None:
    """The committee's decision, as /grades stores it (locked, by the organizer)."""
    with transaction(bot.engine) as session:
        decision = session.get(GradeDecision, (bot.world.round_id, bot.world.orgs[org]))
        decision = decision or GradeDecision(
            round_id=bot.world.round_id, org_id=bot.world.orgs[org], proposed_grade=grade
        )
        decision.final_grade, decision.locked = grade, True
        decision.reason = None if grade == decision.proposed_grade else "重新核实后调整"
        decision.decided_by = bot.world.people["organizer"]
        decision.decided_at = bot.clock()
        session.add(decision)


def _reviewer(bot: BotHarness) -> Phone:
    """A 县委组织部 reviewer, listed under the township committee in the roster."""
    with transaction(bot.engine) as session:
        person = Person(name="县审核员", phone="13900000100", org_id=bot.world.orgs["committee"])
        session.add(person)
        session.flush()
        assert person.id is not None
        session.add(
            PersonRole(
                person_id=person.id, org_id=bot.world.orgs["committee"], role="county_reviewer"
            )
        )
        session.add(
            TelegramAccount(
                person_id=person.id,
                telegram_user_id=REVIEWER,
                chat_id=REVIEWER,
                bound_via="invitation",
            )
        )
    return bot.phone(REVIEWER)


def _states(bot: BotHarness) -> dict[str, ReviewState]:
    with Session(bot.engine) as session:
        found = review_statuses(session, round_id=bot.world.round_id)
    names = {org_id: key for key, org_id in bot.world.orgs.items()}
    return {names[org_id]: status.state for org_id, status in found.items()}


async def test_a_grade_goes_from_decided_to_final_through_a_return(town: BotHarness) -> None:
    organizer = phone_of(town, "organizer", ORGANIZER)
    _decide(town, "village", "good")
    _decide(town, "enterprise", "poor")
    reviewer = _reviewer(town)

    report = await organizer.send("/report")
    assert "已上报 2 个支部" in report.text
    (document,) = report.documents
    book = load_workbook(io.BytesIO(town.api.file_bytes(document["file_id"])))  # type: ignore[attr-defined]
    grading = book["上级党组织评分定级表"]
    reported = sorted(str(row[1]) for row in grading.iter_rows(min_row=2, values_only=True))
    assert reported == ["东方机械厂党支部", "红星村党支部"], "the 附件4 of the reported grades"
    assert _states(town) == {"village": ReviewState.REPORTED, "enterprise": ReviewState.REPORTED}
    with Session(town.engine) as session:
        told = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "review_reported"))
        assert [(m.chat_id, m.payload["text"]) for m in told.all()] == [
            (REVIEWER, "镇党委上报了 2 个支部的等次，请发送 /review 审核。")
        ]
    waiting = await reviewer.send("/review")
    assert "红星村党支部" in waiting.text and "已上报" in waiting.text
    assert "需要写明原因" in (await reviewer.send("/review 退回 红星村")).text
    returned = await reviewer.send("/review 退回 红星村 满意度测评参与面不足，请核实")
    assert "已退回" in returned.text
    assert _states(town)["village"] is ReviewState.RETURNED
    with Session(town.engine) as session:
        decision = session.get(GradeDecision, (town.world.round_id, town.world.orgs["village"]))
        notices = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "review_returned")
        ).all()
    assert decision is not None and not decision.locked, "the committee may decide again"
    assert [n.chat_id for n in notices] == [ORGANIZER]
    assert "满意度测评参与面不足" in notices[0].payload["text"]

    # Not decided again yet: nothing to report; then the committee decides again.
    assert "没有可上报的等次" in (await organizer.send("/report")).text
    town.clock.advance(hours=1)
    _decide(town, "village", "fairly_good")
    again = await organizer.send("/report")
    assert "已上报 1 个支部" in again.text
    assert _states(town)["village"] is ReviewState.REPORTED

    approved = await reviewer.send("/review 通过 全部")
    assert "已审核通过 2 个支部" in approved.text
    final = await organizer.send("/finalize")
    assert final.text.count("正式确定") >= 3  # the title and both lines
    assert set(_states(town).values()) == {ReviewState.FINAL}

    with Session(town.engine) as session:
        history = session.exec(
            select(ReviewEvent.action)
            .where(ReviewEvent.org_id == town.world.orgs["village"])
            .order_by(col(ReviewEvent.id))
        ).all()
        audited = session.exec(
            select(AuditLog.action).where(col(AuditLog.action).like("review.%"))
        ).all()
    assert history == ["report", "return", "redecide", "report", "approve", "finalize"]
    assert sorted(set(audited)) == [
        "review.approve",
        "review.finalize",
        "review.redecide",
        "review.report",
        "review.return",
    ]


async def test_each_step_belongs_to_its_role(town: BotHarness) -> None:
    organizer = phone_of(town, "organizer", ORGANIZER)
    _decide(town, "village", "good")
    # The organizer cannot approve, and a reviewer cannot act before the report.
    assert REFUSED in (await organizer.send("/review 通过 全部")).text
    reviewer = _reviewer(town)
    before = await reviewer.send("/review 通过 红星村")
    assert "不能做这一步" in before.text
    assert REFUSED in (await reviewer.send("/report")).text
    member = phone_of(town, "member", MEMBER)
    for command in ("/report", "/review", "/finalize"):
        assert REFUSED in (await member.send(command)).text, command
    assert _states(town) == {"village": ReviewState.DECIDED}


async def test_a_quarterly_round_shows_each_two_new_branch_moving(town: BotHarness) -> None:
    # Issue 9 point 7 (docs/rules.md §11): the previous grade, the new one and 晋位/降级.
    from storage.rounds import close_round, create_round, open_round
    from surveys.categories import Phase

    organizer = phone_of(town, "organizer", ORGANIZER)
    assert "不是季度重新评定" in (await organizer.send("/regrade")).text
    _decide(town, "enterprise", "average")
    now = town.clock()
    with transaction(town.engine) as session:
        close_round(session, round_id=town.world.round_id, now=now)
        quarterly = create_round(
            session,
            name="2026年第一季度重新评定",
            deadlines={Phase.SATISFACTION: now + timedelta(days=7)},
            options={"kind": "quarterly_regrade"},
            now=now,
        )
        assert quarterly.id is not None
        open_round(session, round_id=quarterly.id, now=now)
        session.add(
            GradeDecision(
                round_id=quarterly.id,
                org_id=town.world.orgs["enterprise"],
                proposed_grade="good",
                final_grade="good",
                locked=True,
                decided_at=now,
            )
        )
    shown = await organizer.send("/regrade")
    assert "东方机械厂党支部：一般 → 好（晋位）" in shown.text
    assert "红星村" not in shown.text, "villages are not re-graded quarterly"
