"""Issue 14 in the workbook: 参与情况 and 未参评名单, answers by meaning, the file's name.

Each workbook is written, then opened again with openpyxl and read cell by cell.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import Engine
from sqlmodel import Session

from bot.sheets import export_filename, export_title
from bot.workbook import write_workbook
from storage.db import transaction
from storage.models import Organization, Person, Round, TelegramAccount
from tests.factories import add_open_round, add_org, add_person, assign, new_phone
from tests.factories import build_scored_township as build_township

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness


def rows_of(sheet: Worksheet) -> list[dict[str, object]]:
    header = [cell.value for cell in sheet[1]]
    return [
        dict(zip(header, row, strict=True)) for row in sheet.iter_rows(min_row=2, values_only=True)
    ]


@pytest.fixture
def book(engine: Engine, tmp_path: Path) -> Workbook:
    """The scored township's workbook: 孙党员 (南社区) owes the survey and never registered;
    钱书记 (西村's secretary, registered) is also a member of 南社区's survey, not answered."""
    with transaction(engine) as session:
        ids = build_township(session)
        south = session.get(Organization, ids["south"])
        round_ = session.get(Round, ids["round"])
        qian = session.get(Person, ids["secretary_west"])
        assert south and round_ and qian
        assign(session, round_, qian, south, "satisfaction", "members")
        session.add(
            TelegramAccount(
                person_id=qian.id, telegram_user_id=77, chat_id=77, bound_via="invitation"
            )
        )
    with Session(engine) as session:
        path = write_workbook(session, round_id=ids["round"], path=tmp_path)
    return load_workbook(path)


# --- 参与情况 -------------------------------------------------------------------------------


def test_the_participation_sheet_counts_each_audience_against_its_target(book: Workbook) -> None:
    sheet = book["参与情况"]
    assert [c.value for c in sheet[1]] == [
        "党组织名称",
        "参评对象",
        "名册人数",
        "应参评人数",
        "已参评人数",
        "参评比例",
        "还差人数",
        "是否达标",
    ]
    rows = rows_of(sheet)
    east = {row["参评对象"]: row for row in rows if row["党组织名称"] == "东村党支部"}
    # 东村: 10 members on the roster, 5 ballots from members; 5 representatives, 1 ballot.
    assert east["党员"]["名册人数"] == 10 and east["党员"]["已参评人数"] == 5
    assert east["群众"]["名册人数"] == 5 and east["群众"]["已参评人数"] == 1
    for row in east.values():
        needed = max(0, int(row["应参评人数"]) - int(row["已参评人数"]))  # type: ignore[call-overload]
        assert row["还差人数"] == needed
    assert east["群众"]["是否达标"] == "未达标" and east["群众"]["还差人数"] > 0  # type: ignore[operator]
    assert east["党员"]["参评比例"] == 0.5
    assert [row["党组织名称"] for row in rows] == sorted(row["党组织名称"] for row in rows)
    assert sheet.auto_filter.ref == sheet.dimensions, "every row and column can be filtered"
    assert sheet.freeze_panes == "C2", "the header, the branch and the audience stay in view"
    rate = sheet.cell(row=2, column=6)
    assert rate.number_format == "0.00%"


# --- 未参评名单 -----------------------------------------------------------------------------


def test_the_waiting_list_names_who_owes_what_and_never_a_choice(book: Workbook) -> None:
    sheet = book["未参评名单"]
    assert [c.value for c in sheet[1]] == ["党组织名称", "姓名", "参评对象", "待参评", "登记情况"]
    rows = [tuple(row.values()) for row in rows_of(sheet)]
    assert ("南社区党支部", "孙党员", "党员", "满意度测评", "未登记") in rows
    assert ("南社区党支部", "钱书记", "党员", "满意度测评", "已登记") in rows
    # Everyone who answered is absent; no cell holds an answer (满意, 基本满意, …).
    names = {row[1] for row in rows}
    assert "张书记" not in names and "王组长" not in names
    values = {value for row in rows for value in row}
    assert not values & {"满意", "基本满意", "不满意", "satisfied"}
    assert sheet.auto_filter.ref == sheet.dimensions
    assert sheet.freeze_panes == "C2"


# --- Answers by meaning ---------------------------------------------------------------------


def test_answer_columns_are_named_by_meaning_not_by_number(book: Workbook) -> None:
    header = [c.value for c in book["党员群众满意度测评汇总表"][1]]
    assert "领导班子好-满意" in header and "群众反映好-不满意" in header
    assert "知晓情况-了解" in header and "参与情况-未参加" in header
    assert not [h for h in header if str(h).startswith("Q")], "no Q1, Q2 …"


def test_english_answer_columns_are_named_by_meaning_too(engine: Engine, tmp_path: Path) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    with Session(engine) as session:
        path = write_workbook(session, round_id=ids["round"], path=tmp_path, locale="en")
    book = load_workbook(path)
    assert "Leadership team - Satisfied" in [c.value for c in book.worksheets[2][1]]
    assert "Participation" in book.sheetnames and "Not yet taken part" in book.sheetnames


# --- The file's name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("round_name", "locale", "file_name"),
    [
        ("2026年度基层党组织分类定级", "zh_CN", "2026年度基层党组织分类定级汇总.xlsx"),
        ("2026年度", "zh_CN", "2026年度分类定级汇总.xlsx"),
        ("2026年度基层党组织分类定级", "en", "2026年度基层党组织分类定级 summary.xlsx"),
        ("2026", "en", "2026 grading summary.xlsx"),
    ],
)
def test_the_file_name_says_the_topic_once(round_name: str, locale: str, file_name: str) -> None:
    assert export_filename(round_name, locale) == file_name
    assert export_title(round_name, locale) == file_name.removesuffix(".xlsx")


def test_ceping_export_names_the_file_after_a_round_that_names_the_topic(
    engine: Engine, tmp_path: Path
) -> None:
    with transaction(engine) as session:
        round_ = add_open_round(session, "2026年度基层党组织分类定级")
        org = add_org(session, "东村党支部", members=1)
        person = add_person(session, "东村党员", org, "member", phone=new_phone())
        assign(session, round_, person, org, "satisfaction", "members")
        round_id = round_.id
    assert round_id is not None
    with Session(engine) as session:
        path = write_workbook(session, round_id=round_id, path=tmp_path)
    assert path.name == "2026年度基层党组织分类定级汇总.xlsx"
    assert load_workbook(path).properties.title == "2026年度基层党组织分类定级汇总"


async def test_export_through_the_bot_names_the_file_once(bot: BotHarness) -> None:
    with transaction(bot.engine) as session:
        session.add(
            TelegramAccount(
                person_id=bot.world.people["organizer"],
                telegram_user_id=4001,
                chat_id=4001,
                bound_via="invitation",
            )
        )
    reply = await bot.phone(4001).send("/export")
    (document,) = reply.documents
    assert document["file_name"] == "2025年度分类定级汇总.xlsx"  # the round: 2025年度分类定级
    data = bot.api.file_bytes(document["file_id"])  # type: ignore[attr-defined]
    book = load_workbook(io.BytesIO(data))
    assert {"参与情况", "未参评名单"} <= set(book.sheetnames)
