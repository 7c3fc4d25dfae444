"""/publish stores the announced tally as a record that the secretary and the 工作组组长 sign.

Issue 9 point 9 (docs/rules.md §10): later ballots never change what was signed; only the
roster's 工作组组长 signs as leader; signing asks to confirm; below the privacy threshold
the record still shows participation; item labels are not doubled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session, select

from storage.db import transaction
from storage.models import Announcement, AuditLog, Organization, PersonRole, Round, SignOff
from storage.tallies import round_tally
from tests.factories import cast_ballot
from tests.test_bot_reports import INSPECTOR, ORGANIZER, REFUSED, SECRETARY, phone_of
from tests.test_bot_reports import town as town  # the fixture

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness

LEADER_BUTTON = "✍ 工作组组长签字"


def _make_leader(bot: BotHarness) -> None:
    with transaction(bot.engine) as session:
        session.add(
            PersonRole(
                person_id=bot.world.people["inspector"],
                org_id=bot.world.orgs["committee"],
                role="work_group_leader",
            )
        )


def _another_ballot(bot: BotHarness) -> None:
    with transaction(bot.engine) as session:
        round_ = session.get(Round, bot.world.round_id)
        village = session.get(Organization, bot.world.orgs["village"])
        assert round_ is not None and village is not None
        cast_ballot(session, round_, village, "dissatisfied")


def _record(bot: BotHarness) -> Announcement:
    with Session(bot.engine) as session:
        row = session.get(Announcement, (bot.world.round_id, bot.world.orgs["village"]))
        assert row is not None
        session.expunge(row)
        return row


async def test_a_ballot_after_signing_leaves_the_signed_record_unchanged(town: BotHarness) -> None:
    secretary = phone_of(town, "secretary", SECRETARY)
    shown = await secretary.send("/publish")
    assert "有效票数：5" in shown.text and "参与情况" in shown.text
    await secretary.tap("✍ 支部书记签字")
    signed = await secretary.tap("✅ 确认签字")
    assert "支部书记：李书记" in signed.text
    before = _record(town)

    _another_ballot(town)
    again = await secretary.send("/publish")
    assert "有效票数：5" in again.text, "the announced record, not the live tally"
    after = _record(town)
    assert (after.digest, after.record) == (before.digest, before.record)
    with Session(town.engine) as session:
        live = round_tally(session, round_id=town.world.round_id).branch(town.world.orgs["village"])
        audit = session.exec(select(AuditLog).where(AuditLog.action == "publish.sign")).one()
    assert live is not None and live.ballots == 6, "the live tally moved on"
    assert audit.detail["digest"] == before.digest, "the signature names the record it signs"


async def test_an_unsigned_record_follows_the_ballots_until_someone_signs(
    town: BotHarness,
) -> None:
    secretary = phone_of(town, "secretary", SECRETARY)
    await secretary.send("/publish")
    first = _record(town)
    _another_ballot(town)
    assert "有效票数：6" in (await secretary.send("/publish")).text
    assert _record(town).digest != first.digest


async def test_only_the_rosters_work_group_leader_signs_as_leader(town: BotHarness) -> None:
    inspector = phone_of(town, "inspector", INSPECTOR)
    await inspector.send("/publish 红星村")
    assert LEADER_BUTTON not in inspector.buttons, "inspecting does not make one the leader"
    village = town.world.orgs["village"]
    forged = await inspector.tap(callback_data=f"rp:s:{village}:l")
    assert forged.alert and REFUSED in forged.alert
    with Session(town.engine) as session:
        assert session.exec(select(SignOff)).all() == []

    _make_leader(town)
    await inspector.send("/publish 红星村")
    asked = await inspector.tap(LEADER_BUTTON)
    assert "确认以工作组组长身份签字" in asked.text and "记录指纹" in asked.text
    with Session(town.engine) as session:
        assert session.exec(select(SignOff)).all() == [], "one tap does not sign"
    done = await inspector.tap("✅ 确认签字")
    assert "工作组组长：陈检查" in done.text


async def test_a_confirmation_of_a_record_that_changed_signs_nothing(town: BotHarness) -> None:
    secretary = phone_of(town, "secretary", SECRETARY)
    await secretary.send("/publish")
    await secretary.tap("✍ 支部书记签字")
    _another_ballot(town)
    organizer = phone_of(town, "organizer", ORGANIZER)
    await organizer.send("/publish 红星村")  # announces the new count
    reply = await secretary.tap("✅ 确认签字")
    assert "公布记录已经更新" in reply.text
    with Session(town.engine) as session:
        assert session.exec(select(SignOff)).all() == []


async def test_below_the_threshold_the_record_shows_participation_only(town: BotHarness) -> None:
    organizer = phone_of(town, "organizer", ORGANIZER)
    shown = await organizer.send("/publish 东方")
    assert "不足 5 票" in shown.text
    assert "参与情况：" in shown.text and "党员 0 人" in shown.text
    assert "满意率" not in shown.text


async def test_item_labels_are_not_doubled(town: BotHarness) -> None:
    secretary = phone_of(town, "secretary", SECRETARY)
    shown = await secretary.send("/publish")
    lines = [line for line in shown.text.splitlines() if "：" in line and line[:1] == "Q"]
    assert lines, shown.text
    for line in lines:
        number = line.split("：")[0].split()[0]
        assert line.count(number) == 1, line
