"""Tables on a phone (issue 14): numbers first and the name last, 名次, the unscored collapsed.

In ``<pre>`` a Chinese character is not exactly two Latin columns wide on a phone, so a
column after a name drifts. Every table therefore puts its numbers first and the name last,
collapses the branches without a score into one line (其余N个暂无得分) and shows scores
without trailing zero decimals (88.00 → 88). Checked on the pure views and through the bot
as organizer, secretary and inspector.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot import report_views as views
from bot.coverage_views import coverage_table
from storage.db import transaction
from storage.models import Assignment, Organization, Round, TelegramAccount
from storage.responses import save_answer, submit
from storage.tallies import RoundTally, round_tally
from surveys.instruments import AnswerValue
from tests.factories import (
    add_org,
    add_person,
    assign,
    build_graded_township,
    new_phone,
    points_for_total,
)

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness
    from tests.fakebot import Phone
    from tests.fakebot.phone import Reply

ORGANIZER, SECRETARY, INSPECTOR = 3001, 3002, 3005
PHONE_COLUMNS = 32


def pre_blocks(text: str) -> list[list[str]]:
    """The lines of every <pre> block of a reply, in order."""
    return [part.split("</pre>")[0].splitlines() for part in text.split("<pre>")[1:]]


def shown_blocks(reply: Reply) -> list[list[str]]:
    """The lines of every monospace (pre) entity of the messages a reply shows."""
    blocks = []
    for message in reply.shown:
        units = message.get("text", "").encode("utf-16-le")
        for entity in message.get("entities", []):
            if entity["type"] == "pre":
                start, end = 2 * entity["offset"], 2 * (entity["offset"] + entity["length"])
                blocks.append(units[start:end].decode("utf-16-le").splitlines())
    return blocks


def name_column(lines: list[str], names: list[str]) -> set[int]:
    """Display columns before each row's name: one value when the names line up."""
    return {views.width(line[: line.rindex(name)]) for line, name in zip(lines, names, strict=True)}


@pytest.fixture
def graded(engine: Engine) -> RoundTally:
    """Three villages scored 88.5, 92 and 75 by the committee; 东盾村 and 西河村 unscored."""
    with transaction(engine) as session:
        round_id, _ = build_graded_township(session, [Decimal("88.5"), 92, 75])
        town = session.exec(select(Organization).where(Organization.name == "某镇党委")).one()
        round_ = session.get(Round, round_id)
        assert round_ is not None
        for name in ("东盾村党支部", "西河村党支部"):
            org = add_org(session, name, parent_id=town.id, members=3)
            person = add_person(session, name[:2] + "党员", org, "member", phone=new_phone())
            assign(session, round_, person, org, "satisfaction", "members")
    with Session(engine) as session:
        return round_tally(session, round_id=round_id)


# --- /tally's township table -------------------------------------------------------------


def test_the_township_table_puts_numbers_first_and_the_name_last(graded: RoundTally) -> None:
    text = views.township_table(graded, "zh_CN", title="2028年度")
    (lines,) = pre_blocks(text)
    assert lines[0].split() == ["名次", "票数", "得分", "建议", "党组织"]
    rows = [line.split() for line in lines[1:-1]]
    assert rows == [
        ["1", "1", "92", "好(暂定)", "第2村"],
        ["2", "1", "88.5", "较好(暂定)", "第1村"],
        ["3", "1", "75", "一般(暂定)", "第3村"],
    ]
    assert lines[-1] == "其余2个暂无得分", "the unscored branches are one line"
    assert len(name_column(lines[1:-1], ["第2村", "第1村", "第3村"])) == 1
    # The numbers are Latin, so they line up whatever the phone's Chinese font does.
    ends = {line.index(row[2]) + len(row[2]) for line, row in zip(lines[1:], rows, strict=False)}
    assert len(ends) == 1
    assert ".00" not in text
    assert all(views.width(line) <= PHONE_COLUMNS for line in lines)


def test_the_english_table_names_the_rank_column_and_counts_the_rest(graded: RoundTally) -> None:
    (lines,) = pre_blocks(views.township_table(graded, "en", title="2028"))
    assert lines[0].split() == ["Rank", "Votes", "Score", "Grade", "Branch"]
    assert lines[-1] == "2 more not yet scored"


def test_a_table_without_any_score_is_one_line(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, _ = build_graded_township(session, [])
        town = session.exec(select(Organization).where(Organization.name == "某镇党委")).one()
        round_ = session.get(Round, round_id)
        assert round_ is not None
        org = add_org(session, "东盾村党支部", parent_id=town.id, members=3)
        person = add_person(session, "东盾党员", org, "member", phone=new_phone())
        assign(session, round_, person, org, "satisfaction", "members")
    with Session(engine) as session:
        tally = round_tally(session, round_id=round_id)
    (lines,) = pre_blocks(views.township_table(tally, "zh_CN", title="2028年度"))
    assert lines[1:] == ["1个暂无得分"], "no 其余 when nothing is listed above it"
    (lines,) = pre_blocks(views.township_table(tally, "en", title="2028"))
    assert lines[1:] == ["1 not yet scored"]


# --- /rank ---------------------------------------------------------------------------------


def test_rankings_put_the_rank_and_score_first_and_collapse_the_unscored(
    graded: RoundTally,
) -> None:
    pool, inspection = pre_blocks(views.ranking_text(graded, "zh_CN"))
    assert pool[0].split() == ["名次", "得分", "建议", "党组织"]
    assert [line.split() for line in pool[1:-1]] == [
        ["1", "92", "好(暂定)", "第2村"],
        ["2", "88.5", "较好(暂定)", "第1村"],
        ["3", "75", "一般(暂定)", "第3村"],
    ]
    assert pool[-1] == "其余2个暂无得分"
    assert inspection[0].split() == ["名次", "得分", "党组织"]
    assert [line.split() for line in inspection[1:-1]] == [
        ["1", "100", "第1村"],
        ["1", "100", "第2村"],
        ["1", "100", "第3村"],
    ]
    assert inspection[-1] == "其余2个暂无得分"
    assert all(views.width(line) <= PHONE_COLUMNS for line in pool + inspection)


# --- Through the bot, as each role ----------------------------------------------------------


@pytest.fixture
async def scored(bot: BotHarness) -> AsyncIterator[BotHarness]:
    """The committee scored 红星村 92.5; 东方机械厂 has no score."""
    with transaction(bot.engine) as session:
        assignment = session.exec(
            select(Assignment).where(
                Assignment.round_id == bot.world.round_id,
                Assignment.person_id == bot.world.people["organizer"],
                Assignment.org_id == bot.world.orgs["village"],
                Assignment.instrument_id == "superior_scoring",
            )
        ).one()
        assert assignment.id is not None
        for item_id, points in points_for_total("superior_scoring", Decimal("92.5")).items():
            value = AnswerValue(points=points)
            save_answer(session, assignment_id=assignment.id, item_id=item_id, value=value)
        submit(session, assignment_id=assignment.id, now=bot.clock())
    yield bot


def phone_of(bot: BotHarness, key: str, user_id: int) -> Phone:
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


async def test_the_organizers_tables_are_numbers_first(scored: BotHarness) -> None:
    phone = phone_of(scored, "organizer", ORGANIZER)
    (table,) = shown_blocks(await phone.send("/tally"))
    assert table[0].startswith("名次")
    assert table[1].split()[2:3] == ["92.5"] and table[1].endswith("红星村")
    assert table[-1] == "其余1个暂无得分"
    blocks = shown_blocks(await phone.send("/rank"))
    assert any(line.endswith("红星村") and "92.5" in line for block in blocks for line in block)
    assert ["1个暂无得分"] in [block[1:] for block in blocks], "the firm's pool: nobody scored"
    (grades,) = shown_blocks(await phone.send("/grades"))
    assert grades[1].split()[0] == "92.5" and grades[1].endswith("红星村")
    assert grades[-1] == "其余1个暂无得分"


async def test_an_inspector_reads_the_same_layout(scored: BotHarness) -> None:
    phone = phone_of(scored, "inspector", INSPECTOR)
    (table,) = shown_blocks(await phone.send("/tally"))
    assert table[0].split()[0] == "名次"
    assert table[1].endswith("红星村") and "92.5" in table[1].split()
    assert table[-1] == "其余1个暂无得分"
    blocks = shown_blocks(await phone.send("/rank"))
    assert all(block[0].startswith("名次") for block in blocks)


async def test_a_secretary_reads_their_branch_without_trailing_zeros(scored: BotHarness) -> None:
    phone = phone_of(scored, "secretary", SECRETARY)
    detail = await phone.send("/tally")  # one branch: its full tally
    assert "上级评分：92.5（1 人）" in detail.text and ".00" not in detail.text
    (ranking,) = [b for b in shown_blocks(await phone.send("/rank")) if len(b) > 1][:1]
    assert ranking[0].startswith("名次") and ranking[1].endswith("红星村")


# --- /coverage's township table ------------------------------------------------------------


def test_the_coverage_table_puts_numbers_first_and_the_name_last(graded: RoundTally) -> None:
    (lines,) = pre_blocks(coverage_table(graded, "zh_CN"))
    assert lines[0].split() == ["缺口", "党员", "群众", "党组织"]
    names = [line.split()[-1] for line in lines[1:]]
    assert "东盾村" in names and "西河村" in names
    assert len(name_column(lines[1:], names)) == 1, "every name starts in the same column"
    gaps = [int(line.split()[0]) for line in lines[1:]]
    assert gaps == sorted(gaps, reverse=True), "the furthest behind first"
    assert all(views.width(line) <= PHONE_COLUMNS for line in lines)
