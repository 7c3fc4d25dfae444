"""Stories of organizers, secretaries and inspectors reading tallies and deciding grades.

The real Application runs against the fake Bot API and the test database. The world has
the township 青山镇党委 with 红星村党支部 and 东方机械厂党支部; people are bound to their
Telegram accounts directly in the database.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot import report_views as views
from storage.db import transaction
from storage.models import (
    Assignment,
    AuditLog,
    DecisionExceptionRow,
    GradeDecision,
    Organization,
    OutboxMessage,
    Person,
    PersonRole,
    RectificationItem,
    Round,
    SignOff,
    TelegramAccount,
    Veto,
)
from storage.responses import save_answer, submit
from storage.tallies import round_tally
from surveys.i18n import t
from surveys.instruments import AnswerValue, get_instrument
from tests.factories import build_scored_township as build_township
from tests.factories import cast_ballot, points_for_total
from tests.instrument_bundle import V1_TEXT, V2_TEXT, v2_shipped

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness, World
    from tests.fakebot import Phone


ORGANIZER, SECRETARY, MEMBER, INSPECTOR, WORKER = 2001, 2002, 2003, 2005, 2006
REFUSED = "抱歉，您没有查看或办理此项的权限"
SCORED_AT = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)


# --- Pure formatting ----------------------------------------------------------------------


def test_ranks_share_a_place_on_ties_and_skip_the_next() -> None:
    values = [Decimal(95), Decimal(91), Decimal(91), Decimal(80), None]
    assert views.competition_ranks(values) == [1, 2, 2, 4, None]


def test_names_are_shortened_to_fit_a_phone_table() -> None:
    assert views.short_name("红星村党支部") == "红星村"
    assert views.short_name("东方机械制造有限公司党支部") == "东方机械…"
    assert views.width(views.short_name("东方机械制造有限公司党支部")) <= views.NAME_WIDTH
    assert views.pad("东村", 6) == "东村  " and views.pad("12.5", 6, right=True) == "  12.5"


def test_the_township_table_fits_a_phone_line(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    with Session(engine) as session:
        tally = round_tally(session, round_id=ids["round"])
    text = views.township_table(tally, "zh_CN", title="2027年度")
    table = text.split("<pre>")[1].split("</pre>")[0]
    lines = table.splitlines()
    assert all(views.width(line) <= 32 for line in lines)
    # Nobody is scored by the committee yet: one line counts them (issue 14), never a number
    # a small group hides; each pool's basis is named under the table.
    assert lines == ["名次 票数 得分 建议 党组织", "3个暂无得分"]
    assert "村(社区)：按镇党委评分排名" in text


# --- Setting the scene ---------------------------------------------------------------------


@pytest.fixture
async def town(bot: BotHarness) -> AsyncIterator[BotHarness]:
    """The running bot with five ballots in the village and the committee's two scores."""
    _seed_answers(bot.engine, bot.world)
    yield bot


def _seed_answers(engine: Engine, world: World) -> None:
    """The village complete: five ballots (3 members, 2 masses: both targets met), the
    secretary's self-evaluation, the inspection and the organizer's superior scoring (92);
    the firm only scored 40 by the committee (incomplete)."""
    with transaction(engine) as session:
        round_ = session.get(Round, world.round_id)
        village = session.get(Organization, world.orgs["village"])
        assert round_ is not None and village is not None
        for choice, audience in (
            ("satisfied", "members"),
            ("satisfied", "members"),
            ("satisfied", "members"),
            ("basically_satisfied", "masses"),
            ("dissatisfied", "masses"),
        ):
            cast_ballot(session, round_, village, choice, audience=audience)
        _score(session, world, "village", Decimal(92))
        _score(session, world, "village", Decimal(88), "self_evaluation", "secretary")
        _inspect(session, world, "village")
        _score(session, world, "enterprise", Decimal(40))


def _inspect(session: Session, world: World, org: str) -> None:
    """The inspector's sheet of the branch without deductions (100)."""
    assignment = session.exec(
        select(Assignment).where(
            Assignment.round_id == world.round_id,
            Assignment.person_id == world.people["inspector"],
            Assignment.org_id == world.orgs[org],
            col(Assignment.instrument_id).startswith("inspection"),
        )
    ).one()
    for item in get_instrument(assignment.instrument_id).items:
        if item.kind == "deduction":
            value = AnswerValue(deduction=Decimal(0))
            save_answer(session, assignment_id=assignment.id, item_id=item.id, value=value)  # type: ignore[arg-type]
    submit(session, assignment_id=assignment.id, now=SCORED_AT)  # type: ignore[arg-type]


def _score(
    session: Session,
    world: World,
    org: str,
    total: Decimal,
    instrument_id: str = "superior_scoring",
    scorer: str = "organizer",
) -> None:
    assignment = session.exec(
        select(Assignment).where(
            Assignment.round_id == world.round_id,
            Assignment.person_id == world.people[scorer],
            Assignment.org_id == world.orgs[org],
            Assignment.instrument_id == instrument_id,
        )
    ).one()
    for item_id, points in points_for_total(instrument_id, total).items():
        save_answer(
            session,
            assignment_id=assignment.id,  # type: ignore[arg-type]
            item_id=item_id,
            value=AnswerValue(points=points),
        )
    submit(session, assignment_id=assignment.id, now=SCORED_AT)  # type: ignore[arg-type]


def phone_of(bot: BotHarness, key: str, user_id: int) -> Phone:
    """A phone bound to PEOPLE[key]."""
    with transaction(bot.engine) as session:
        session.add(
            TelegramAccount(
                person_id=bot.world.people[key],
                telegram_user_id=user_id,
                chat_id=user_id,
                bound_via="invitation",
            )
        )
    return bot.phone(user_id)


def refusals(engine: Engine, action: str) -> list[AuditLog]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(AuditLog).where(AuditLog.action == action, AuditLog.outcome == "refused")
            ).all()
        )


# --- /tally ------------------------------------------------------------------------------------


async def test_the_organizer_sees_every_branch_and_gets_the_full_file(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    table = await phone.send("/tally")
    assert "红星村" in table.text and "东方机械厂" in table.text
    # One basis per pool, named; the village pool is complete, the firm's is not.
    assert (
        "村(社区)：按镇党委评分排名；已齐全，参与定级 1 个：好 最多 0 个，较差 至少 1 个"
        in table.text
    )
    assert "两新组织：按镇党委评分排名；尚未齐全" in table.text
    assert table.last and table.last["entities"][1]["type"] == "pre", "a monospace table"
    file = await phone.tap("📄 完整汇总表")
    assert file.documents and file.documents[0]["file_name"].endswith(".xlsx")


async def test_the_organizer_reads_one_branch_by_part_of_its_name(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    detail = await phone.send("/tally 红星")
    text = detail.text
    # Five ballots: Q1–Q5 3×满意, 1×基本满意, 1×不满意 → 满意率 80%, score (300+60)/5 = 72.
    assert "有效票数：5" in text
    assert "满意率 80.0%" in text
    assert "满意度得分：72" in text
    assert "上级评分：92（1 人）" in text
    # The only branch of its complete pool: no 好 place (⌊0.2⌋ = 0) and one 较差 at least
    # (⌈0.1⌉ = 1, docs/rules.md §5.3), so 92 is proposed 较差 by the quota.
    assert "建议等次：较差（第 1 名，按“较差”的最低比例列为较差）" in text


async def test_an_ambiguous_name_offers_the_choices_as_buttons(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    choices = await phone.send("/tally 党支部")
    assert sorted(choices.buttons) == ["东方机械厂", "红星村"]
    chosen = await phone.tap("东方机械厂")
    assert "东方机械厂党支部" in chosen.text and "上级评分：40" in chosen.text


async def test_a_v1_round_still_reports_the_v1_form_after_v2_ships(
    town: BotHarness, tmp_path: Path
) -> None:
    # The secretary's self-evaluation (88, the town fixture) was given on the v1 form.
    phone = phone_of(town, "organizer", ORGANIZER)
    with v2_shipped(tmp_path):
        detail = await phone.send("/tally 红星村")
    assert f"{V1_TEXT} 20、" in detail.text and V2_TEXT not in detail.text


async def test_a_secretary_sees_their_branch_and_is_refused_another(town: BotHarness) -> None:
    phone = phone_of(town, "secretary", SECRETARY)
    own = await phone.send("/tally")
    assert "红星村党支部" in own.text and "满意率" in own.text
    other = await phone.send("/tally 东方机械厂")
    assert "东方机械厂" not in other.text
    assert "没有找到" in other.text
    assert len(refusals(town.engine, "report.tally")) == 1


async def test_a_secretary_sees_only_the_committees_decided_grade(town: BotHarness) -> None:
    # issue 14: "Proposals reach secretaries before the committee has decided".
    secretary = phone_of(town, "secretary", SECRETARY)
    before = await secretary.send("/tally")
    assert "建议等次" not in before.text and "较差" not in before.text
    organizer = phone_of(town, "organizer", ORGANIZER)
    await organizer.send("/grades 红星村")
    await organizer.tap("✅ 确认较差")
    await organizer.tap("✅ 确认锁定")
    after = await secretary.send("/tally")
    assert "评定等次：较差" in after.text and "建议等次" not in after.text


async def test_a_forged_tap_naming_another_branch_by_id_is_refused(town: BotHarness) -> None:
    phone = phone_of(town, "secretary", SECRETARY)
    firm = town.world.orgs["enterprise"]
    await phone.send("/tally")
    for view in ("t", "c", "p", "r"):
        forged = await phone.tap(callback_data=f"rp:{view}:{firm}")
        assert forged.alert and REFUSED in forged.alert
    refused = refusals(town.engine, "report.tally")
    assert [row.target for row in refused] == [f"org:{firm}"]
    assert len(refusals(town.engine, "report.coverage")) == 1
    assert len(refusals(town.engine, "report.publish")) == 1
    assert len(refusals(town.engine, "rectify.view")) == 1
    garbled = await phone.tap(callback_data="rp:t:红星村")
    assert garbled.alert and "红星" not in garbled.alert


async def test_members_and_strangers_see_no_tally(town: BotHarness) -> None:
    member = phone_of(town, "member", MEMBER)
    refused = await member.send("/tally")
    assert REFUSED in refused.text and "红星" not in refused.text
    stranger = town.phone(9999)
    unknown = await stranger.send("/tally")
    assert "您还没有登记" in unknown.text
    assert len(refusals(town.engine, "report.tally")) == 2


async def test_an_inspector_sees_the_branches_they_inspect(town: BotHarness) -> None:
    phone = phone_of(town, "inspector", INSPECTOR)
    table = await phone.send("/tally")
    assert "红星村" in table.text and "东方机械厂" in table.text


async def test_a_small_group_shows_participation_only(town: BotHarness) -> None:
    with transaction(town.engine) as session:
        round_ = session.get(Round, town.world.round_id)
        firm = session.get(Organization, town.world.orgs["enterprise"])
        assert round_ and firm
        cast_ballot(session, round_, firm, "satisfied")
    phone = phone_of(town, "organizer", ORGANIZER)
    detail = await phone.send("/tally 东方")
    assert "已收到 1 票，不足 5 票，只显示参与情况" in detail.text
    assert "满意率" not in detail.text


# --- /coverage and /rank --------------------------------------------------------------------


async def test_coverage_names_who_has_not_answered_and_who_is_unreachable(
    town: BotHarness,
) -> None:
    phone_of(town, "member", MEMBER)  # 张党员 registered; 赵党员 never did
    phone = phone_of(town, "secretary", SECRETARY)
    report = await phone.send("/coverage")
    assert "尚未参评" in report.text and "张党员" in report.text
    assert "无法通过机器人联系" in report.text and "赵党员：满意度测评（未登记）" in report.text
    organizer = phone_of(town, "organizer", ORGANIZER)
    table = await organizer.send("/coverage")
    assert "红星村" in table.text and "缺口" in table.text


async def test_ranking_lists_both_orders(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    ranking = await phone.send("/rank")
    # Each pool on its one named basis (docs/rules.md §5.5), then the inspection ranking.
    assert "村(社区)：按镇党委评分排名" in ranking.text and "按观摩检查得分排名" in ranking.text
    assert "按综合得分排名" not in ranking.text
    first = ranking.texts[0]
    assert first.index("红星村") < first.index("东方机械厂")


# --- /grades --------------------------------------------------------------------------------


async def test_the_organizer_confirms_a_proposal_and_it_locks(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    overview = await phone.send("/grades")
    assert "分数线：好 90分（含）以上" in overview.text
    await phone.tap("红星村")
    effect = await phone.tap("✅ 确认较差")
    # The effect on the pool is shown before anything is locked (issue 14).
    assert "锁定后本类别：好 0 个（最多 0），较差 1 个（至少 1）" in effect.text
    with Session(town.engine) as session:
        assert session.exec(select(GradeDecision)).all() == []
    confirmed = await phone.tap("✅ 确认锁定")
    assert "已确认红星村党支部为“较差”" in confirmed.text
    with Session(town.engine) as session:
        decision = session.get(GradeDecision, (town.world.round_id, town.world.orgs["village"]))
        assert decision and decision.locked and decision.final_grade == "poor"
    again = await phone.send("/grades 红星村")
    assert "🔒 已确认：较差" in again.text and "✅ 确认较差" not in again.buttons
    assert "🔓 解锁" in again.buttons


async def _ask_exception(phone: Phone) -> str:
    await phone.send("/grades 红星村")
    effect = await phone.tap("改为好")
    assert "“好”超过比例：1 个，最多 0 个" in effect.text
    assert "“较差”不足比例：0 个，至少 1 个" in effect.text
    asked = await phone.tap("申请例外（说明理由）")
    return asked.text


async def test_an_override_breaking_the_quota_needs_a_reason_and_a_second_organizer(
    town: BotHarness,
) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    assert "请发送申请例外的理由" in await _ask_exception(phone)
    requested = await phone.send("全年无信访，群众公认")
    assert "已申请例外" in requested.text
    own = await phone.send("/grades 红星村")
    refused = await phone.tap("确认例外：评为“好”")
    assert refused.alert and "另一名组织员" in refused.alert
    assert "待确认的例外申请" in own.text
    second = _second_organizer(town, 2010)
    await second.send("/grades 红星村")
    done = await second.tap("确认例外：评为“好”")
    assert "例外已由第二名组织员确认" in done.text
    with Session(town.engine) as session:
        decision = session.get(GradeDecision, (town.world.round_id, town.world.orgs["village"]))
        assert decision and decision.locked and decision.final_grade == "good"
        assert decision.reason == "全年无信访，群众公认"
        actions = [row.action for row in session.exec(select(AuditLog)).all()]
    assert "grade.exception_request" in actions and "grade.exception_confirm" in actions
    assert "grade.override" in actions


async def test_the_other_organizers_are_told_an_exception_waits_for_them(
    town: BotHarness,
) -> None:
    # Nobody would otherwise know to open /grades: the exception waited unseen.
    second = _second_organizer(town, 2011)
    phone = phone_of(town, "organizer", ORGANIZER)
    await _ask_exception(phone)
    await phone.send("全年无信访，群众公认")
    with Session(town.engine) as session:
        told = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "exception_waiting")
        ).all()
    assert [row.chat_id for row in told] == [second.user_id], "only the other organizer"
    text = told[0].payload["text"]
    for part in ("王组织", "红星村党支部", "“好”", "全年无信访，群众公认", "/grades"):
        assert part in text, text


async def test_an_exception_reason_is_refused_after_30_minutes_of_the_bots_clock(
    town: BotHarness,
) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    await _ask_exception(phone)
    town.clock.advance(hours=2)
    late = await phone.send("全年无信访，群众公认")
    assert "已申请例外" not in late.text, "the step waited past its 30 minutes"
    with Session(town.engine) as session:
        assert session.exec(select(DecisionExceptionRow)).all() == []


async def test_an_exception_cancelled_before_the_reason_changes_nothing(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    await _ask_exception(phone)
    cancelled = await phone.send("/cancel")
    assert "已取消" in cancelled.text
    with Session(town.engine) as session:
        assert session.get(GradeDecision, (town.world.round_id, town.world.orgs["village"])) is None
        assert session.exec(select(DecisionExceptionRow)).all() == []
    after = await phone.send("随便说一句")
    assert "已申请例外" not in after.text, "the text is no longer taken as a reason"


async def test_a_locked_grade_is_unlocked_with_a_reason(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    await phone.send("/grades 红星村")
    await phone.tap("✅ 确认较差")
    await phone.tap("✅ 确认锁定")
    await phone.send("/grades 红星村")
    asked = await phone.tap("🔓 解锁")
    assert "请发送解锁" in asked.text
    done = await phone.send("录入时看错了分数")
    assert "已解锁" in done.text
    with Session(town.engine) as session:
        decision = session.get(GradeDecision, (town.world.round_id, town.world.orgs["village"]))
        assert decision and not decision.locked and decision.final_grade is None
        unlock = session.exec(select(AuditLog).where(AuditLog.action == "grade.unlock")).one()
    assert unlock.detail["reason"] == "录入时看错了分数" and unlock.detail["previous"] == "poor"


def _second_organizer(bot: BotHarness, user_id: int) -> Phone:
    """Another organizer of the township, bound to a phone."""
    with transaction(bot.engine) as session:
        person = Person(name="刘组织", phone="13800000099", org_id=bot.world.orgs["committee"])
        session.add(person)
        session.flush()
        assert person.id is not None
        session.add(
            PersonRole(person_id=person.id, org_id=bot.world.orgs["committee"], role="organizer")
        )
        session.add(
            TelegramAccount(
                person_id=person.id,
                telegram_user_id=user_id,
                chat_id=user_id,
                bound_via="invitation",
            )
        )
    return bot.phone(user_id)


async def test_a_secretary_cannot_grade_and_a_forged_tap_is_refused(town: BotHarness) -> None:
    phone = phone_of(town, "secretary", SECRETARY)
    refused = await phone.send("/grades")
    assert REFUSED in refused.text
    forged = await phone.tap(callback_data=f"rp:g:{town.world.orgs['village']}")
    assert forged.alert and REFUSED in forged.alert
    assert len(refusals(town.engine, "report.grades")) == 1
    assert len(refusals(town.engine, "grade.confirm")) == 1
    with Session(town.engine) as session:
        assert session.exec(select(GradeDecision)).all() == []


# --- /veto and /members_only ----------------------------------------------------------------


async def test_the_organizer_records_a_veto_and_a_members_only_branch(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    # The command line stops at the confirmation (issue 14), which shows the effect.
    asked = await phone.send("/veto 红星村 违纪违法党员 2026年3月")
    assert "建议等次：较差（不变）" in asked.text
    veto = await phone.tap("✅ 确认登记")
    assert "已登记红星村党支部的高压线：违纪违法党员" in veto.text
    await phone.send("/members_only 东方 职工分散在外地项目")
    marked = await phone.tap("✅ 确认标记")
    assert "以全体党员测评为准" in marked.text
    with Session(town.engine) as session:
        assert [v.condition for v in session.exec(select(Veto)).all()] == ["disciplinary_violation"]
        firm = session.get(Organization, town.world.orgs["enterprise"])
        assert firm and firm.members_only and firm.members_only_reason == "职工分散在外地项目"
    picker = await phone.send("/veto 红星村")
    assert "1. 有不合格党员" in picker.text, "a branch alone opens the condition picker"


async def test_only_an_organizer_may_veto_or_mark_members_only(town: BotHarness) -> None:
    phone = phone_of(town, "secretary", SECRETARY)
    assert REFUSED in (await phone.send("/veto 红星村 不合格党员")).text
    assert REFUSED in (await phone.send("/members_only 红星村 外出")).text
    assert len(refusals(town.engine, "grade.veto")) == 1
    assert len(refusals(town.engine, "org.members_only")) == 1


# --- /export and /chart ---------------------------------------------------------------------


async def test_export_sends_the_workbook_of_what_the_asker_may_see(town: BotHarness) -> None:
    phone = phone_of(town, "secretary", SECRETARY)
    reply = await phone.send("/export")
    assert reply.documents
    data = town.api.file_bytes(reply.documents[0]["file_id"])  # type: ignore[attr-defined]
    book = load_workbook(io.BytesIO(data))
    names = [
        row[0] for row in book["党员群众满意度测评汇总表"].iter_rows(min_row=2, values_only=True)
    ]
    assert names == ["红星村党支部"], "a secretary's file holds their branch only"


def _proposed_grades(town: BotHarness, document: dict[str, Any]) -> list[object]:
    data = town.api.file_bytes(document["file_id"])  # type: ignore[attr-defined]
    sheet = load_workbook(io.BytesIO(data))[t("export.sheet.grading")]
    header = [cell.value for cell in sheet[1]]
    column = header.index(t("export.col.proposed_grade"))
    return [row[column] for row in sheet.iter_rows(min_row=2, values_only=True)]


async def test_a_secretarys_export_shows_no_undecided_proposal(town: BotHarness) -> None:
    organizer = phone_of(town, "organizer", ORGANIZER)
    organizers = _proposed_grades(town, (await organizer.send("/export")).documents[0])
    assert any(organizers), "the committee sees its proposals"
    secretary = phone_of(town, "secretary", SECRETARY)
    assert not any(_proposed_grades(town, (await secretary.send("/export")).documents[0]))


async def test_charts_arrive_as_photos(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    reply = await phone.send("/chart")
    assert len(reply.photos) == 2
    member = phone_of(town, "member", MEMBER)
    assert REFUSED in (await member.send("/chart")).text


# --- /publish -------------------------------------------------------------------------------


async def test_the_secretary_announces_and_both_sign(town: BotHarness) -> None:
    secretary = phone_of(town, "secretary", SECRETARY)
    shown = await secretary.send("/publish")
    assert "当场公布" in shown.text and "满意率 80.0%" in shown.text
    assert "支部书记：未签字" in shown.text
    assert secretary.buttons == ["✍ 支部书记签字"]
    asked = await secretary.tap("✍ 支部书记签字")
    assert "确认以支部书记身份签字" in asked.text, "signing asks first"
    signed = await secretary.tap("✅ 确认签字")
    assert "支部书记：李书记（2026-03-02 09:00 签字）" in signed.text
    # An assigned inspector is not the 工作组组长: only the roster's leader signs as leader.
    inspector = phone_of(town, "inspector", INSPECTOR)
    await inspector.send("/publish 红星村")
    assert inspector.buttons == []
    with transaction(town.engine) as session:
        session.add(
            PersonRole(
                person_id=town.world.people["inspector"],
                org_id=town.world.orgs["committee"],
                role="work_group_leader",
            )
        )
    await inspector.send("/publish 红星村")
    assert inspector.buttons == ["✍ 工作组组长签字"]
    await inspector.tap("✍ 工作组组长签字")
    await inspector.tap("✅ 确认签字")
    with Session(town.engine) as session:
        roles = sorted(row.role for row in session.exec(select(SignOff)).all())
    assert roles == ["secretary", "work_group_leader"]
    member = phone_of(town, "member", MEMBER)
    assert REFUSED in (await member.send("/publish")).text
    forged = await member.tap(callback_data=f"rp:s:{town.world.orgs['village']}:s")
    assert forged.alert and REFUSED in forged.alert


# --- /rectify -------------------------------------------------------------------------------


async def test_the_secretary_keeps_the_ledger_step_by_step(town: BotHarness) -> None:
    phone = phone_of(town, "secretary", SECRETARY)
    empty = await phone.send("/rectify")
    assert "暂无整改事项" in empty.text
    assert (await phone.tap("➕ 新增整改事项")).text.startswith("请发送整改事项")
    assert "措施" in (await phone.send("三会一课记录不全")).text
    assert "时限" in (await phone.send("补齐记录，每月自查")).text
    assert "无法识别这个日期" in (await phone.send("下个月")).text
    assert "责任人" in (await phone.send("4月30日")).text
    added = await phone.send("李书记")
    assert "已加入整改台账" in added.text and "三会一课记录不全" in added.text
    assert "销号 1" not in phone.buttons, "a branch does not close its own lines"
    organizer = phone_of(town, "organizer", ORGANIZER)
    await organizer.send("/rectify 红星村")
    assert "验收意见" in (await organizer.tap("销号 1")).text
    closed = await organizer.send("查看了补齐的会议记录")
    assert "已销号" in closed.text
    with Session(town.engine) as session:
        item = session.exec(select(RectificationItem)).one()
    assert item.due_on == date(2026, 4, 30) and item.closed_at is not None
    member = phone_of(town, "member", MEMBER)
    assert REFUSED in (await member.send("/rectify")).text


# --- The catalog ----------------------------------------------------------------------------


def test_report_texts_are_complete_in_english_and_safe_in_html() -> None:
    from surveys.i18n import catalog

    keys = {k for k in catalog("zh_CN") if k.split(".")[0] in ("report", "chart", "export")}
    assert keys <= set(catalog("en")), "every report text has an English version"
    for locale in ("zh_CN", "en"):
        for key in keys:
            assert not set("<>&") & set(catalog(locale)[key]), f"{locale} {key} breaks HTML"


# --- Every command, every role ---------------------------------------------------------------

COMMAND_ACTIONS = {
    "/tally": "report.tally",
    "/coverage": "report.coverage",
    "/rank": "report.rank",
    "/grades": "report.grades",
    "/export": "report.export",
    "/chart": "report.chart",
    "/publish": "report.publish",
    "/rectify": "rectify.view",
    "/veto 红星村 不合格党员": "grade.veto",
    "/members_only 红星村 外出": "org.members_only",
}


async def test_a_member_is_refused_every_report_command_and_each_refusal_is_audited(
    town: BotHarness,
) -> None:
    phone = phone_of(town, "member", MEMBER)
    for command, action in COMMAND_ACTIONS.items():
        reply = await phone.send(command)
        assert REFUSED in reply.text, command
        assert "红星" not in reply.text and "92" not in reply.text, "a refusal names no data"
        assert len(refusals(town.engine, action)) == 1, command
        assert not reply.documents and not reply.photos


async def test_an_inspector_reads_but_does_not_decide(town: BotHarness) -> None:
    phone = phone_of(town, "inspector", INSPECTOR)
    for command in ("/coverage", "/rank", "/publish 红星村"):
        assert REFUSED not in (await phone.send(command)).text, command
    assert (await phone.send("/export")).documents
    assert len((await phone.send("/chart")).photos) == 2
    for command in ("/grades", "/veto 红星村 不合格党员", "/members_only 红星村 外出"):
        assert REFUSED in (await phone.send(command)).text, command
    ledger = await phone.send("/rectify 红星村")
    assert "整改台账" in ledger.text and "➕ 新增整改事项" not in ledger.buttons


async def test_the_organizer_keeps_any_branch_ledger(town: BotHarness) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    ledger = await phone.send("/rectify 东方")
    assert "东方机械厂党支部整改台账" in ledger.text
    assert "➕ 新增整改事项" in ledger.buttons


async def test_an_ambiguous_veto_asks_for_the_full_name_and_records_nothing(
    town: BotHarness,
) -> None:
    phone = phone_of(town, "organizer", ORGANIZER)
    reply = await phone.send("/veto 党支部 不合格党员")
    assert "有多个党组织符合" in reply.text and "红星村党支部" in reply.text
    assert not phone.buttons
    with Session(town.engine) as session:
        assert session.exec(select(Veto)).all() == []
