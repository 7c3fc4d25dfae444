"""Stories of grading through the real Application: proposals that make sense mid-round,
participation as a condition (参与面未达标, 补测, waiver), one named basis per pool.

The world is the seeded township of ``tests.bot_fixtures`` (红星村党支部, 东方机械厂党支部,
an open round whose phases all end 14 days after the seed); the stories add a social
organization like the demo's volunteer association: 20 members and 24 staff, so its
targets are 16 members and 12 staff (docs/rules.md §6.1).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from jobs.planner import plan_due
from storage.answering import load_step
from storage.db import transaction
from storage.models import Assignment, AuditLog, Organization, Person, Round, TelegramAccount
from storage.remedies import order_rerun
from storage.responses import WindowState, window_state
from tests.factories import (
    add_org,
    add_person,
    assign,
    cast_ballot,
    new_phone,
    points_for_total,
    submit_inspection,
    submit_points,
)

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness, FakeClock, World
    from tests.fakebot import Phone

ORGANIZER = 3001
SATISFIED_BALLOTS = 6


def _organizer_phone(bot: BotHarness) -> Phone:
    with transaction(bot.engine) as session:
        session.add(
            TelegramAccount(
                person_id=bot.world.people["organizer"],
                telegram_user_id=ORGANIZER,
                chat_id=ORGANIZER,
                bound_via="invitation",
            )
        )
    return bot.phone(ORGANIZER)


def _volunteers(bot: BotHarness, ballots: int) -> int:
    """The volunteer association with every part but enough ballots: 3 members answered."""
    with transaction(bot.engine) as session:
        round_ = session.get(Round, bot.world.round_id)
        committee = session.get(Organization, bot.world.orgs["committee"])
        assert round_ is not None and committee is not None
        org = add_org(
            session,
            "董浜镇志愿者协会党支部",
            "social",
            members=20,
            staff=24,
            parent_id=committee.id,
        )
        for _ in range(ballots):
            cast_ballot(session, round_, org, "dissatisfied")
        member = add_person(session, "志愿者书记", org, "committee", phone=new_phone())
        total = points_for_total("self_evaluation", Decimal(80))
        submit_points(session, round_, org, member, "self_evaluation", total, "committee")
        inspector = session.get(Person, bot.world.people["inspector"])
        organizer = session.get(Person, bot.world.people["organizer"])
        assert inspector is not None and organizer is not None
        submit_inspection(session, round_, org, inspector, instrument_id="inspection_two_new")
        scored = points_for_total("superior_scoring", Decimal(85))
        submit_points(session, round_, org, organizer, "superior_scoring", scored, "organizers")
        assert org.id is not None
        return org.id


def _past_the_survey_deadline(bot: BotHarness) -> None:
    bot.clock.advance(days=15)


async def test_mid_round_six_satisfied_ballots_are_not_proposed_poor(bot: BotHarness) -> None:
    # issue 9: "the only branch with answers (6 ballots, all 满意, score 100.00) is proposed
    # 较差 in /tally" — quotas applied to a partial pool.
    with transaction(bot.engine) as session:
        round_ = session.get(Round, bot.world.round_id)
        village = session.get(Organization, bot.world.orgs["village"])
        assert round_ is not None and village is not None
        for _ in range(SATISFIED_BALLOTS):
            cast_ballot(session, round_, village, "satisfied")
    phone = _organizer_phone(bot)
    table = await phone.send("/tally")
    assert "较差" not in table.text
    assert "尚未齐全" in table.text, "each pool says it is provisional"
    detail = await phone.send("/tally 红星村")
    assert "满意度得分：100" in detail.text
    assert "未完成，暂不建议等次：缺少支部自评、观摩检查、镇党委评分" in detail.text
    assert "\n建议等次" not in detail.text


async def test_below_target_at_the_deadline_then_a_rerun_brings_it_to_target_and_it_is_graded(
    bot: BotHarness,
) -> None:
    org_id = _volunteers(bot, ballots=3)
    phone = _organizer_phone(bot)
    _past_the_survey_deadline(bot)
    before = await phone.send("/tally 志愿者")
    # 3 of 16 members and 0 of 12 staff at the deadline: no grade (seed 000 二.2).
    assert "参与面未达标：测评截止时还差党员 13 人、群众 12 人，不定等次" in before.text
    assert "\n建议等次" not in before.text

    ordered = await phone.send("/rerun 志愿者 7 群众外出务工，另行组织测评")
    assert "已为董浜镇志愿者协会党支部安排补测" in ordered.text
    during = await phone.send("/tally 志愿者")
    assert "参与面未达标" not in during.text and "参与面还差党员 13 人、群众 12 人" in during.text

    with transaction(bot.engine) as session:
        round_ = session.get(Round, bot.world.round_id)
        org = session.get(Organization, org_id)
        assert round_ is not None and org is not None
        # A member who has not answered yet may answer in the re-run's window.
        late = add_person(session, "补测党员", org, "member", phone=new_phone())
        waiting = assign(session, round_, late, org, "satisfaction", "members")
        assert waiting.id is not None
        step = load_step(session=session, assignment_id=waiting.id)
        assert step is not None and step.phase is not None
        assert window_state(step.round, step.phase, bot.clock.now) is WindowState.OPEN
        for _ in range(13):
            cast_ballot(session, round_, org, "satisfied")
        for _ in range(12):
            cast_ballot(session, round_, org, "satisfied", audience="masses")
    bot.clock.advance(days=8)
    after = await phone.send("/tally 志愿者")
    assert "参与面" not in after.text.split("【得分】")[-1]
    assert "建议等次" in after.text
    with Session(bot.engine) as session:
        audited = session.exec(select(AuditLog).where(AuditLog.action == "grade.rerun")).one()
    assert audited.detail["reason"] == "群众外出务工，另行组织测评"


async def test_an_organizer_grades_a_branch_below_target_with_a_reason(bot: BotHarness) -> None:
    _volunteers(bot, ballots=3)
    phone = _organizer_phone(bot)
    _past_the_survey_deadline(bot)
    refused = await phone.send("/waive 志愿者")
    assert "用法：/waive" in refused.text
    done = await phone.send("/waive 志愿者 协会成员常年在外，镇党委研究决定按现有票数定级")
    assert "已准予董浜镇志愿者协会党支部" in done.text
    after = await phone.send("/tally 志愿者")
    assert "建议等次" in after.text
    assert "参与面未达标，组织员已说明理由准予定级" in after.text
    # Three ballots: the satisfaction numbers and the composite are hidden, the grade is not.
    assert "不足 5 票：满意度及综合得分不单独显示" in after.text
    with Session(bot.engine) as session:
        audited = session.exec(
            select(AuditLog).where(AuditLog.action == "grade.waive_participation")
        ).one()
    assert audited.detail["reason"].startswith("协会成员常年在外")


async def test_a_rerun_needs_an_organizer_days_and_a_reason(bot: BotHarness) -> None:
    _volunteers(bot, ballots=3)
    phone = _organizer_phone(bot)
    for text in ("/rerun 志愿者", "/rerun 志愿者 七天 理由", "/rerun 志愿者 7"):
        answer = await phone.send(text)
        assert "用法：/rerun" in answer.text
    with Session(bot.engine) as session:
        assert session.exec(select(AuditLog).where(AuditLog.action == "grade.rerun")).all() == []


def test_the_rerun_window_is_the_branchs_own(bot: BotHarness) -> None:
    """Another branch's satisfaction window still closes at the round's deadline."""
    with Session(bot.engine) as session:
        assignment = session.exec(
            select(Assignment).where(
                Assignment.round_id == bot.world.round_id,
                Assignment.org_id == bot.world.orgs["village"],
                col(Assignment.instrument_id) == "satisfaction",
            )
        ).first()
        assert assignment is not None and assignment.id is not None
        step = load_step(session=session, assignment_id=assignment.id)
    assert step is not None and step.phase is not None
    late = datetime(2100, 1, 1, tzinfo=UTC)
    assert window_state(step.round, step.phase, late) is WindowState.CLOSED


def test_rerun_reminders_reach_that_branch_only_against_its_own_deadline(
    engine: Engine, clock: FakeClock, world: World
) -> None:
    zone = ZoneInfo("Asia/Shanghai")
    with transaction(engine) as session:
        for key, chat in (("member", 4101), ("worker", 4102)):
            session.add(
                TelegramAccount(
                    person_id=world.people[key],
                    telegram_user_id=chat,
                    chat_id=chat,
                    bound_via="invitation",
                )
            )
    after = clock.advance(days=15)  # the round's survey deadline has passed
    # A re-run deadline at 18:00 Beijing time, so its 24-hour reminder falls in the day.
    local = after.astimezone(zone).replace(hour=18, minute=0) + timedelta(days=3)
    deadline = local.astimezone(UTC)
    with transaction(engine) as session:
        order_rerun(
            session,
            round_id=world.round_id,
            org_id=world.orgs["village"],
            deadline=deadline,
            reason="补测",
            person_id=world.people["organizer"],
            now=after,
        )
    with transaction(engine) as session:
        due = plan_due(session, now=deadline - timedelta(hours=23), zone=zone)
    reminded = {m.chat_id for m in due if m.kind == "reminder"}
    assert reminded == {4101}, "the village's member, not the firm's worker"
    assert all(m.expires_at == deadline for m in due if m.kind == "reminder")


async def test_surveys_shows_a_late_member_the_reruns_deadline_not_the_rounds(
    bot: BotHarness,
) -> None:
    """After the round's deadline, a member of a branch in 补测 must see the survey open until
    the 补测's deadline (the tap already honoured it); the list said 已截止."""
    org_id = _volunteers(bot, ballots=3)
    organizer = _organizer_phone(bot)
    _past_the_survey_deadline(bot)
    await organizer.send("/rerun 志愿者 7 群众外出务工，另行组织测评")
    member_id = 3002
    with transaction(bot.engine) as session:
        round_ = session.get(Round, bot.world.round_id)
        org = session.get(Organization, org_id)
        assert round_ is not None and org is not None
        late = add_person(session, "补测党员", org, "member", phone=new_phone())
        assign(session, round_, late, org, "satisfaction", "members")
        session.add(
            TelegramAccount(
                person_id=late.id,
                telegram_user_id=member_id,
                chat_id=member_id,
                bound_via="invitation",
            )
        )
    rerun_ends = bot.clock.now + timedelta(days=7)
    member = bot.phone(member_id)
    listed = await member.send("/surveys")
    when = rerun_ends.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y年%m月%d日")
    assert "已截止" not in listed.text, listed.text
    assert f"截止 {when}" in listed.text, listed.text
    started = await member.tap(listed.buttons[0])
    assert "第 1/9 题" in started.text, started.text
