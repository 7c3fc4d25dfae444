"""/veto and /members_only as button flows (issue 14): branch, condition, note, confirm.

The real Application runs against the fake Bot API. The organizer 王组织 scored 红星村 92
(上级评分); the village is not complete, so its proposal is provisional: 好 by the
threshold. Extra villages (东盾村 and the numbered ones) fill a second page of the picker.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from storage.db import transaction
from storage.models import (
    Assignment,
    AuditLog,
    Organization,
    PendingInput,
    Round,
    Veto,
)
from storage.responses import save_answer, submit
from surveys.i18n import t
from surveys.instruments import AnswerValue, get_instrument
from surveys.vetoes import VETO_CONDITIONS, match_veto_conditions
from tests.factories import (
    add_org,
    add_person,
    assign,
    cast_ballot,
    new_phone,
    points_for_total,
)
from tests.support_answering import registered

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness, World
    from tests.fakebot import Phone

pytest_plugins = ["tests.bot_fixtures"]

ORGANIZER, SECRETARY = 3001, 3002
RULES = Path(__file__).resolve().parent.parent / "docs" / "rules.md"
REFUSED = t("report.refused")
SCORED_AT = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)
STALE = t("report.stale_button")


# --- The conditions as data -------------------------------------------------------------------


def test_the_veto_conditions_are_the_four_of_the_source_as_written() -> None:
    # docs/rules.md §5.6 quotes S4: "凡是有不合格党员、违纪违法党员、超计划生育及重大治安和刑事案件
    # 发生这四条中的任何一条，不能申报‘五好’基层党组织".
    section = RULES.read_text(encoding="utf-8").split("5.6 **Veto**", 1)[1].split("\n\n", 1)[0]
    quote = "".join(section.split("“", 1)[1].split("”", 1)[0].split())
    listed = quote.removeprefix("凡是有").split("这四条")[0].removesuffix("发生")
    assert re.split("、|及", listed) == [names[0] for names in VETO_CONDITIONS.values()]
    assert len(VETO_CONDITIONS) == 4


def test_a_condition_is_read_by_number_name_or_unambiguous_prefix() -> None:
    assert match_veto_conditions("违纪") == ["disciplinary_violation"]
    assert match_veto_conditions("违纪违法党员") == ["disciplinary_violation"]
    assert match_veto_conditions("2") == ["disciplinary_violation"]
    assert match_veto_conditions("重大") == ["major_crime"]
    assert match_veto_conditions("刑事") == ["major_crime"]
    assert match_veto_conditions("excess") == ["excess_births"]
    assert match_veto_conditions("5") == [] and match_veto_conditions("迟到") == []
    assert match_veto_conditions("") == []
    table = {"a": ("违纪党员",), "b": ("违法党员",), "c": ("违纪案件",)}
    assert match_veto_conditions("违纪", table) == ["a", "c"], "ambiguous: both, for a picker"


# --- Setting the scene ------------------------------------------------------------------------


@pytest.fixture
async def organizer(bot: BotHarness) -> Phone:
    """The organizer's phone, on the seeded scene."""
    _seed(bot.engine, bot.world)
    return await registered(bot, "organizer", ORGANIZER)


def _seed(engine: Engine, world: World) -> None:
    """红星村 complete: five ballots (both targets met), the secretary's self-evaluation (88),
    the inspection (100) and the organizer's 上级评分 (92). 东盾村 in the round (one member
    assigned, nothing answered), so the village pool is incomplete and 红星村's proposal is
    provisional: 好 by the threshold. Eight more villages under the township, so the picker
    has two pages."""
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
        _points(session, world, "superior_scoring", "organizer", Decimal(92))
        _points(session, world, "self_evaluation", "secretary", Decimal(88))
        _inspect(session, world)
        committee = world.orgs["committee"]
        dongdun = add_org(session, "东盾村党支部", parent_id=committee, members=5)
        person = add_person(session, "钱党员", dongdun, "member", phone=new_phone())
        assign(session, round_, person, dongdun, "satisfaction", "members")
        for number in range(1, 9):
            add_org(session, f"第{number}村党支部", parent_id=committee, members=3)


def _assignment(session: Session, world: World, instrument: str, key: str) -> int:
    found = session.exec(
        select(Assignment).where(
            Assignment.round_id == world.round_id,
            Assignment.person_id == world.people[key],
            Assignment.org_id == world.orgs["village"],
            col(Assignment.instrument_id).startswith(instrument),
        )
    ).one()
    assert found.id is not None
    return found.id


def _points(session: Session, world: World, instrument: str, key: str, total: Decimal) -> None:
    assignment_id = _assignment(session, world, instrument, key)
    for item_id, points in points_for_total(instrument, total).items():
        value = AnswerValue(points=points)
        save_answer(session, assignment_id=assignment_id, item_id=item_id, value=value)
    submit(session, assignment_id=assignment_id, now=SCORED_AT)


def _inspect(session: Session, world: World) -> None:
    """The inspector's village sheet without deductions (100)."""
    assignment_id = _assignment(session, world, "inspection", "inspector")
    for item in get_instrument("inspection_village").items:
        if item.kind == "deduction":
            value = AnswerValue(deduction=Decimal(0))
            save_answer(session, assignment_id=assignment_id, item_id=item.id, value=value)
    submit(session, assignment_id=assignment_id, now=SCORED_AT)


def vetoes(engine: Engine) -> list[tuple[int, str, str | None]]:
    with Session(engine) as session:
        return [(v.org_id, v.condition, v.note) for v in session.exec(select(Veto)).all()]


def audit_rows(engine: Engine, action: str, outcome: str = "ok") -> list[AuditLog]:
    with Session(engine) as session:
        rows = session.exec(select(AuditLog).where(AuditLog.action == action)).all()
        return [row for row in rows if row.outcome == outcome]


def org(engine: Engine, org_id: int) -> Organization:
    with Session(engine) as session:
        found = session.get(Organization, org_id)
        assert found is not None
        return found


# --- /veto -------------------------------------------------------------------------------------


async def test_a_short_condition_typed_on_the_command_line_means_the_one_it_begins(
    bot: BotHarness, organizer: Phone
) -> None:
    # issue 14: "/veto 东盾村 违纪" was rejected where 违纪违法党员 is meant.
    reply = await organizer.send("/veto 东盾村 违纪 两名党员受处分")
    assert t("report.error.unknown_condition") not in reply.text
    assert "东盾村党支部" in reply.text and "有违纪违法党员" in reply.text
    assert "说明：两名党员受处分" in reply.text
    assert organizer.buttons == ["✅ 确认登记", "✖️ 取消"]
    assert vetoes(bot.engine) == [], "nothing is recorded before the confirmation"
    done = await organizer.tap("✅ 确认登记")
    assert "已登记东盾村党支部的高压线：违纪违法党员" in done.text
    dongdun = next(o for o, name in _names(bot.engine).items() if name == "东盾村党支部")
    assert vetoes(bot.engine) == [(dongdun, "disciplinary_violation", "两名党员受处分")]
    assert len(audit_rows(bot.engine, "grade.veto")) == 1


def _names(engine: Engine) -> dict[int, str]:
    with Session(engine) as session:
        return {o.id: o.name for o in session.exec(select(Organization)).all() if o.id}


async def test_veto_without_arguments_walks_branch_condition_note_and_confirm(
    bot: BotHarness, organizer: Phone
) -> None:
    picker = await organizer.send("/veto")
    assert "登记高压线：请选择党组织（第 1/2 页）" in picker.text
    assert organizer.buttons[:3] == ["东方机械厂", "东盾村", "第1村"], "names, in order"
    assert "下一页 ▶️" in organizer.buttons and "红星村" not in organizer.buttons
    second = await organizer.tap("下一页 ▶️")
    assert "第 2/2 页" in second.text and "◀️ 上一页" in organizer.buttons
    await organizer.tap("◀️ 上一页")
    await organizer.tap("下一页 ▶️")
    conditions = await organizer.tap("红星村")
    # Short labels on the buttons, the full text of each condition on the screen.
    for line in (
        "1. 有不合格党员",
        "2. 有违纪违法党员",
        "3. 有超计划生育",
        "4. 发生重大治安和刑事案件",
    ):
        assert line in conditions.text
    assert organizer.buttons == ["不合格党员", "违纪违法", "超计划生育", "重大案件", "✖️ 取消"]
    asked = await organizer.tap("违纪违法")
    assert "请发送说明" in asked.text and organizer.buttons == ["跳过", "✖️ 取消"]
    confirm = await organizer.send("村委委员因违法被判刑")
    # What will happen to the grade, from the grading code: 好 (provisional) → 较好.
    assert "不能评为“好”" in confirm.text
    assert "建议等次：好 → 较好" in confirm.text
    assert vetoes(bot.engine) == []
    done = await organizer.tap("✅ 确认登记")
    assert "已登记红星村党支部的高压线：违纪违法党员" in done.text
    village = bot.world.orgs["village"]
    assert vetoes(bot.engine) == [(village, "disciplinary_violation", "村委委员因违法被判刑")]
    again = await organizer.tap(callback_data=_data(organizer, "✅ 确认登记"))
    assert again.alert == STALE, "a second tap on the old confirmation records nothing"
    assert len(vetoes(bot.engine)) == 1
    grades = await organizer.send("/grades 红星村")
    assert "违纪违法党员" in grades.text


def _data(phone: Phone, label: str) -> str:
    """The callback data the button labelled ``label`` had on an earlier screen."""
    for message in reversed(phone.history):
        for row in message.get("reply_markup", {}).get("inline_keyboard", []):
            for button in row:
                if button["text"] == label:
                    return str(button["callback_data"])
    raise AssertionError(label)


async def test_the_note_can_be_skipped_and_a_recorded_condition_is_not_offered_again(
    bot: BotHarness, organizer: Phone
) -> None:
    await organizer.send("/veto 红星村")
    await organizer.tap("超计划生育")
    confirm = await organizer.tap("跳过")
    assert "说明：无" in confirm.text
    await organizer.tap("✅ 确认登记")
    again = await organizer.send("/veto 红星村")
    assert "已登记：超计划生育" in again.text and "超计划生育" not in organizer.buttons
    village = bot.world.orgs["village"]
    forged = await organizer.tap(callback_data=f"rp:fv:{village}:3")
    assert forged.alert and "已登记" in forged.alert
    assert vetoes(bot.engine) == [(village, "excess_births", None)]


async def test_text_where_a_button_is_expected_gets_a_hint_and_changes_nothing(
    bot: BotHarness, organizer: Phone
) -> None:
    await organizer.send("/veto")
    hint = await organizer.send("红星村")
    assert hint.text == t("flags.tap_a_button")
    await organizer.tap("下一页 ▶️")
    await organizer.tap("红星村")
    hint = await organizer.send("违纪违法党员")
    assert hint.text == t("flags.tap_a_button")
    await organizer.tap("不合格党员")
    await organizer.tap("跳过")
    hint = await organizer.send("确认")
    assert hint.text == t("flags.tap_a_button")
    assert vetoes(bot.engine) == []
    cancelled = await organizer.tap("✖️ 取消")
    assert cancelled.text == t("flags.cancelled")
    assert vetoes(bot.engine) == []
    with Session(bot.engine) as session:
        assert session.exec(select(PendingInput)).all() == []


async def test_an_ambiguous_condition_on_the_command_line_shows_the_picker(
    bot: BotHarness, organizer: Phone
) -> None:
    reply = await organizer.send("/veto 红星村 党员")
    assert reply.text.startswith("无法识别高压线“党员”，请从下面选择。")
    assert "违纪违法" in organizer.buttons
    assert vetoes(bot.engine) == []


async def test_forged_and_stale_veto_taps_are_refused(bot: BotHarness, organizer: Phone) -> None:
    village = bot.world.orgs["village"]
    await organizer.send("/grades")  # a message to forge taps on
    for data in (f"rp:fv:{village}:9", f"rp:fv:{village}:0", "rp:f:v:b:红星村", "rp:f:x:b:1"):
        forged = await organizer.tap(callback_data=data)
        assert forged.alert == STALE, data
    # A confirmation that was never asked for (no note step behind it).
    forged = await organizer.tap(callback_data=f"rp:f:v:y:{village}")
    assert forged.alert == STALE
    skipped = await organizer.tap(callback_data=f"rp:f:v:s:{village}")
    assert skipped.alert == STALE
    # A branch outside the organizer's scope: the committee itself is not graded.
    outside = await organizer.tap(callback_data=f"rp:f:v:b:{bot.world.orgs['committee']}")
    assert outside.alert == REFUSED
    assert vetoes(bot.engine) == []
    assert len(audit_rows(bot.engine, "grade.veto", "refused")) == 1


async def test_an_older_confirmation_tapped_later_records_nothing(
    bot: BotHarness, organizer: Phone
) -> None:
    await organizer.send("/veto 红星村 不合格")
    first = _data(organizer, "✅ 确认登记")
    await organizer.send("/veto 红星村 超计划")
    old = await organizer.tap(callback_data=first)
    assert old.alert == STALE, "the older screen showed another condition"
    assert vetoes(bot.engine) == []
    await organizer.tap("✅ 确认登记")
    assert vetoes(bot.engine) == [(bot.world.orgs["village"], "excess_births", None)]


async def test_the_confirmation_expires_with_the_bots_clock(
    bot: BotHarness, organizer: Phone
) -> None:
    await organizer.send("/veto 红星村 不合格")
    bot.clock.advance(hours=1)
    late = await organizer.tap("✅ 确认登记")
    assert late.alert == STALE
    assert vetoes(bot.engine) == []


async def test_only_an_organizer_may_start_or_tap_the_flows(bot: BotHarness) -> None:
    _seed(bot.engine, bot.world)
    secretary = await registered(bot, "secretary", SECRETARY)
    village = bot.world.orgs["village"]
    assert REFUSED in (await secretary.send("/veto")).text  # also a message to forge taps on
    assert REFUSED in (await secretary.send("/members_only")).text
    for data in (f"rp:f:v:b:{village}", f"rp:fv:{village}:1", f"rp:f:m:b:{village}"):
        refused = await secretary.tap(callback_data=data)
        assert refused.alert == REFUSED, data
    assert len(audit_rows(bot.engine, "grade.veto", "refused")) == 3
    assert len(audit_rows(bot.engine, "org.members_only", "refused")) == 2
    assert vetoes(bot.engine) == []


async def test_an_english_organizer_gets_the_flow_in_english(bot: BotHarness) -> None:
    _seed(bot.engine, bot.world)
    await registered(bot, "organizer", ORGANIZER)
    phone = bot.phone(ORGANIZER, language_code="en")
    confirm = await phone.send("/veto 红星村 2")
    assert "Condition: a party member violating discipline or law" in confirm.text
    assert "Proposed grade: Good → Fairly good" in confirm.text
    assert phone.buttons == ["✅ Record it", "✖️ Cancel"]
    assert not any("\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef" for c in confirm.text)


# --- /members_only -------------------------------------------------------------------------------


async def test_members_only_walks_branch_reason_and_confirm(
    bot: BotHarness, organizer: Phone
) -> None:
    picker = await organizer.send("/members_only")
    assert "请选择党组织" in picker.text
    asked = await organizer.tap("东方机械厂")
    assert "请发送原因" in asked.text and organizer.buttons == ["✖️ 取消"]
    confirm = await organizer.send("职工分散在外地项目")
    assert "原因：职工分散在外地项目" in confirm.text
    assert "不再要求群众参与面" in confirm.text
    assert organizer.buttons == ["✅ 确认标记", "✖️ 取消"]
    firm = bot.world.orgs["enterprise"]
    assert not org(bot.engine, firm).members_only
    done = await organizer.tap("✅ 确认标记")
    assert "以全体党员测评为准" in done.text
    marked = org(bot.engine, firm)
    assert marked.members_only and marked.members_only_reason == "职工分散在外地项目"
    assert len(audit_rows(bot.engine, "org.members_only")) == 1


async def test_members_only_with_the_reason_on_the_command_line_asks_to_confirm(
    bot: BotHarness, organizer: Phone
) -> None:
    confirm = await organizer.send("/members_only 东方 职工 分散在外地")
    assert "原因：职工 分散在外地" in confirm.text
    cancelled = await organizer.tap("✖️ 取消")
    assert cancelled.text == t("flags.cancelled")
    assert not org(bot.engine, bot.world.orgs["enterprise"]).members_only


async def test_an_already_marked_branch_shows_its_reason_and_a_new_one_replaces_it(
    bot: BotHarness, organizer: Phone
) -> None:
    await organizer.send("/members_only 东方 外出务工")
    await organizer.tap("✅ 确认标记")
    asked = await organizer.send("/members_only 东方")
    assert "已标记为以全体党员测评为准（原因：外出务工）" in asked.text
    await organizer.send("职工代表无法召集")
    await organizer.tap("✅ 确认标记")
    marked = org(bot.engine, bot.world.orgs["enterprise"])
    assert marked.members_only_reason == "职工代表无法召集"


async def test_a_too_long_reason_is_asked_again(bot: BotHarness, organizer: Phone) -> None:
    await organizer.send("/members_only 东方")
    again = await organizer.send("长" * 501)
    assert again.text == t("hardening.text_too_long", length=501, limit=500)
    confirm = await organizer.send("外出务工")
    assert "原因：外出务工" in confirm.text
