"""What an organizer (组织员) meets on a phone, step by step, kept as a reviewable transcript.

The organizer 王组织 (also the roster's 工作组组长) goes through the whole of their work in
one conversation against the real Application: the to-do list, the live tally, deciding a
grade with its confirmation, recording a veto and a members-only branch with the button
flows, announcing and signing the tally, coverage and a reminder round. Every step goes to
``tests/transcripts/organizer.txt``; see tests/test_transcripts.py for how to regenerate.

The exact-screen assertions are on the screens this module owns (/veto, /members_only) and
on the finished ones (the to-do list, the grade and publish confirmations); /tally, /coverage
and /remind are written down but their texts are being reworked elsewhere.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from storage.db import transaction
from storage.models import Assignment, Organization, PersonRole, Round, Veto
from storage.responses import save_answer, submit
from surveys.i18n import t
from surveys.instruments import AnswerValue, get_instrument
from tests.factories import cast_ballot, points_for_total
from tests.support_answering import registered
from tests.support_transcripts import Transcript

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness, World

pytest_plugins = ["tests.bot_fixtures"]

ORGANIZER = 4001
FINGERPRINT = re.compile(r"记录指纹 [0-9a-f]{16}")
SCORED_AT = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)


def _seed(engine: Engine, world: World) -> None:
    """红星村 complete (five ballots, self-evaluation 88, inspection 100, 上级评分 92); the
    organizer still owes 东方机械厂's 上级评分; the organizer is also the 工作组组长."""
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
        session.add(
            PersonRole(
                person_id=world.people["organizer"],
                org_id=world.orgs["committee"],
                role="work_group_leader",
            )
        )


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
    assignment_id = _assignment(session, world, "inspection", "inspector")
    for item in get_instrument("inspection_village").items:
        if item.kind == "deduction":
            value = AnswerValue(deduction=Decimal(0))
            save_answer(session, assignment_id=assignment_id, item_id=item.id, value=value)
    submit(session, assignment_id=assignment_id, now=SCORED_AT)


async def test_organizer(bot: BotHarness) -> None:
    """An organizer's day: to-do, tally, grades, veto, members only, publish, coverage, remind."""
    _seed(bot.engine, bot.world)
    talk = Transcript("organizer", await registered(bot, "organizer", ORGANIZER))

    await talk.send("/surveys")
    assert "▶️ 开始：上级评分 · 东方机械厂" in talk.phone.buttons  # the branch on the button
    await talk.send("/tally")

    await talk.send("/grades")
    await talk.tap("红星村")
    effect = await talk.tap("✅ 确认较差")
    assert "锁定后本类别：好 0 个（最多 0），较差 1 个（至少 1）" in effect.text
    assert talk.phone.buttons == ["✅ 确认锁定", "返回"]
    locked = await talk.tap("✅ 确认锁定")
    assert "已确认红星村党支部为“较差”" in locked.text

    await _veto(talk)
    await _members_only(talk, bot)

    sheet = await talk.send("/publish 红星村")
    fingerprint = FINGERPRINT.search(sheet.text)
    assert fingerprint is not None and "工作组组长：未签字" in sheet.text
    # Every question is named once, by its short label (no "Q6 Q6", no bare "Q6").
    assert "\nQ1 领导班子好：满意 3、基本满意 1、不满意 1\n" in sheet.text
    assert "\nQ6 总体评价：好 5、较好 0、一般 0、较差 0\n" in sheet.text
    assert "\nQ8 参与情况：经常参加 5" in sheet.text
    asked = await talk.tap("✍ 工作组组长签字")
    assert asked.text == (  # the confirmation names the very record shown
        "确认以工作组组长身份签字？\n签字的是红星村党支部的公布记录：有效票 5 张，"
        f"{fingerprint[0]}。签字后这份记录不再改变。"
    )
    assert talk.phone.buttons == ["✅ 确认签字", "返回"]
    signed = await talk.tap("✅ 确认签字")
    assert "工作组组长：王组织（2026-03-02 09:00 签字）" in signed.text

    coverage = await talk.send("/coverage")
    assert "缺口 党员 群众 党组织\n" in coverage.text  # numbers first, the name last
    reminded = await talk.send("/remind")
    assert "提醒对象（1人）：\n青山镇党委：王组织" in reminded.text  # who, not only how many
    talk.check()


async def _veto(talk: Transcript) -> None:
    picker = await talk.send("/veto")
    assert picker.text == "登记高压线：请选择党组织（第 1/1 页）"
    assert talk.phone.screen.keyboard == [["东方机械厂", "红星村"], ["✖️ 取消"]]
    conditions = await talk.tap("红星村")
    assert conditions.text == (
        "登记高压线 · 红星村党支部\n"
        "四条高压线，有其中任何一条的，不能评为“好”：\n"
        "1. 有不合格党员\n2. 有违纪违法党员\n3. 有超计划生育\n4. 发生重大治安和刑事案件\n"
        "请选择要登记的一条："
    )
    hint = await talk.send("违纪")  # typed where a button is expected
    assert hint.text == t("flags.tap_a_button")
    asked = await talk.tap("违纪违法")
    assert asked.text == (
        "登记高压线 · 红星村党支部 · 有违纪违法党员\n"
        "请发送说明（例如时间、涉及人员、处理情况），没有说明请点“跳过”。"
    )
    confirm = await talk.send("2026年2月村委委员受党纪处分")
    assert confirm.text == (
        "请确认登记高压线：\n"
        "党组织：红星村党支部\n"
        "高压线：有违纪违法党员\n"
        "说明：2026年2月村委委员受党纪处分\n"
        "登记后该支部不能评为“好”：按分数应为“好”的，建议为“较好”，其“好”的名额顺延给下一名。\n"
        "建议等次：较差（不变）\n"
        "该支部已确认的等次：较差（不受影响）。"
    )
    assert talk.phone.screen.keyboard == [["✅ 确认登记", "✖️ 取消"]]
    done = await talk.tap("✅ 确认登记")
    assert done.text == "已登记红星村党支部的高压线：违纪违法党员。该支部不能被建议为“好”。"


async def _members_only(talk: Transcript, bot: BotHarness) -> None:
    await talk.send("/members_only")
    asked = await talk.tap("东方机械厂")
    assert asked.text == (
        "以全体党员测评为准 · 东方机械厂党支部\n请发送原因（例如群众代表无法召集的情况）。"
    )
    confirm = await talk.send("职工分散在外地项目，职工代表无法召集")
    assert confirm.text == (
        "请确认以全体党员测评为准：\n"
        "党组织：东方机械厂党支部\n"
        "原因：职工分散在外地项目，职工代表无法召集\n"
        "确认后：不再要求群众参与面；党员参与面的要求不变，已收到的群众测评票照常计入。"
    )
    assert talk.phone.screen.keyboard == [["✅ 确认标记", "✖️ 取消"]]
    done = await talk.tap("✅ 确认标记")
    assert "已将东方机械厂党支部标记为以全体党员测评为准" in done.text
    with Session(bot.engine) as session:
        assert [v.condition for v in session.exec(select(Veto)).all()] == ["disciplinary_violation"]
        firm = session.get(Organization, bot.world.orgs["enterprise"])
        assert firm is not None and firm.members_only
