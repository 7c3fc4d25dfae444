"""The exported workbook, read back with openpyxl and pandas, cell by cell."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import Engine
from sqlmodel import Session

from bot.workbook import write_workbook
from storage.db import transaction
from storage.grading import add_rectification, close_rectification, record_veto, sign
from storage.models import GradeDecision
from surveys.rules import Grade
from tests.factories import build_scored_township as build_township

# 10:30 in Shanghai.
SIGNED = datetime(2027, 3, 20, 2, 30, tzinfo=UTC)


def _exported(engine: Engine, tmp_path: Path, locale: str = "zh_CN") -> tuple[dict[str, int], Path]:
    with transaction(engine) as session:
        ids = build_township(session)
    with transaction(engine) as session:
        sign(
            session,
            round_id=ids["round"],
            org_id=ids["east"],
            role="secretary",
            person_id=ids["secretary_east"],
            now=SIGNED,
        )
        record_veto(
            session,
            round_id=ids["round"],
            org_id=ids["west"],
            condition="不合格党员",
            note=None,
            person_id=None,
            now=SIGNED,
        )
        # Mid-round nobody is scored by the committee, so nothing can be decided through
        # decide_grade (docs/rules.md §6.3, §8); the sheet only reads a stored decision.
        session.add(
            GradeDecision(
                round_id=ids["round"],
                org_id=ids["east"],
                proposed_grade="fairly_good",
                final_grade=Grade.GOOD.value,
                reason="群众公认",
                decided_by=ids["inspector_1"],
                decided_at=SIGNED,
                locked=True,
            )
        )
        item = add_rectification(
            session,
            org_id=ids["east"],
            round_id=ids["round"],
            matter="三会一课记录不全",
            measures="补齐记录",
            due_on=date(2027, 4, 30),
            responsible="张书记",
            person_id=None,
            now=SIGNED,
        )
        close_rectification(session, item_id=item.id, person_id=None, now=SIGNED)  # type: ignore[arg-type]
    with Session(engine) as session:
        path = write_workbook(session, round_id=ids["round"], path=tmp_path, locale=locale)
    return ids, path


def _row_of(sheet: Worksheet, name: str) -> dict[str, object]:
    headers = [cell.value for cell in sheet[1]]
    for row in sheet.iter_rows(min_row=2, values_only=True):
        if row[0] == name or (len(row) > 1 and row[1] == name):
            return dict(zip(headers, row, strict=True))
    raise AssertionError(f"no row for {name}")


def test_the_workbook_mirrors_the_paper_forms(engine: Engine, tmp_path: Path) -> None:
    _, path = _exported(engine, tmp_path)
    assert path.name == "2027年度分类定级汇总.xlsx"
    book = load_workbook(path)
    assert book.sheetnames == [
        "自评表",
        "自评明细",
        "党员群众满意度测评汇总表",
        "观摩检查测评得分表",
        "观摩打分明细",
        "上级党组织评分定级表",
        "整改台账",
        "参与情况",
        "未参评名单",
    ]
    for sheet in book.worksheets:
        headers = [cell.value for cell in sheet[1]]
        name_column = "AB"[headers.index("党组织名称")]
        frozen = sheet.freeze_panes or ""
        assert frozen[1:] == "2" and frozen[0] > name_column, "header and name stay in view"
        assert sheet.column_dimensions[name_column].width >= 12, "a name is readable"

    self_sheet = book["自评表"]
    assert [c.value for c in self_sheet[1]][:2] == ["党组织名称", "党组织带头人（20）"]
    east = _row_of(self_sheet, "东村党支部")
    assert east["党组织带头人（20）"] == 17.5  # (18 + 17) / 2
    assert east["自评得分"] == 87.5 and east["自评人数"] == 2

    forms = book["自评明细"]
    assert [c.value for c in forms[1]][:3] == ["党组织名称", "评分人", "党组织带头人（20）"]
    by_scorer = {row[1]: row for row in forms.iter_rows(min_row=2, values_only=True)}
    assert by_scorer["张书记"][2] == 18 and by_scorer["张书记"][-2] == 90
    assert by_scorer["李委员"][2] == 17 and by_scorer["李委员"][-2] == 85

    summary = book["党员群众满意度测评汇总表"]
    east = _row_of(summary, "东村党支部")
    assert east["有效测评票数"] == 6
    assert east["领导班子好-满意"] == 4 and east["领导班子好-基本满意"] == 1
    assert east["领导班子好-不满意"] == 1
    assert east["满意率"] == 0.8333 and east["参与率"] == 0.5
    assert east["满意度得分"] == 76.67
    assert east["支部书记签字"] == "张书记"
    assert east["书记签字时间"] == datetime(2027, 3, 20, 10, 30), "shown in Asia/Shanghai"
    assert east["工作组组长签字"] is None
    west = _row_of(summary, "西村党支部")
    assert west["有效测评票数"] == 3 and west["党员参评人数"] == 3
    assert west["领导班子好-满意"] is None and west["满意率"] is None and west["满意度得分"] is None
    assert west["备注"] == "测评不足5人，仅显示参与情况"
    rate_cell = summary.cell(row=2, column=[c.value for c in summary[1]].index("满意率") + 1)
    assert rate_cell.number_format == "0.00%"

    grading = book["上级党组织评分定级表"]
    east = _row_of(grading, "东村党支部")
    # Ranked on the committee's scores, none given yet: no rank, no proposal (§5.5, §6.3).
    assert east["排名"] is None and east["综合得分（暂定）"] == 83.17
    assert east["建议等次"] is None and east["评定等次"] == "好"
    assert east["调整理由"] == "群众公认" and east["确认人"] == "王组长"
    assert _row_of(grading, "西村党支部")["高压线"] == "不合格党员"
    assert _row_of(grading, "南社区党支部")["定级得分"] is None

    ledger = book["整改台账"]
    assert [c.value for c in ledger[1]] == [
        "党组织名称",
        "整改事项",
        "整改措施",
        "整改时限",
        "责任人",
        "完成销号时间",
    ]
    assert [c.value for c in ledger[2]] == [
        "东村党支部",
        "三会一课记录不全",
        "补齐记录",
        datetime(2027, 4, 30),
        "张书记",
        datetime(2027, 3, 20, 10, 30),
    ]


def test_the_inspection_sheet_averages_deductions_and_lists_every_reason(
    engine: Engine, tmp_path: Path
) -> None:
    _, path = _exported(engine, tmp_path)
    frame = pd.read_excel(path, sheet_name="观摩检查测评得分表")
    east = frame[frame["党组织名称"] == "东村党支部"]
    basics = east[east["考核指标"] == "党建基础"]
    # One inspector took every point of 党建基础 (25), the other nothing.
    assert basics["分值"].sum() == 25
    assert basics["平均扣分"].sum() == 12.5
    assert basics["平均得分"].sum() == 12.5
    assert all(reason == "王组长：台账缺失" for reason in basics["扣分原因"])
    total = east[east["考核指标"] == "合计"]
    assert total["平均得分"].tolist() == [87.5]
    detail = pd.read_excel(path, sheet_name="观摩打分明细")
    assert set(detail["打分人"]) == {"王组长", "赵干事"}
    assert detail[detail["打分人"] == "王组长"]["扣分"].sum() == 25


def test_the_english_workbook_has_english_headers(engine: Engine, tmp_path: Path) -> None:
    _, path = _exported(engine, tmp_path, locale="en")
    book = load_workbook(path)
    assert "Rectification ledger" in book.sheetnames
    assert book["Satisfaction summary"]["A1"].value == "Party organization"
    assert book["Self-evaluation"]["B1"].value == "Leader of the party organization (20)"


def test_units_without_a_workers_congress_say_their_masses_are_all_staff(
    engine: Engine, tmp_path: Path
) -> None:
    # Issue 9 point 13: the staff count of a unit without 职代会 is not "群众代表人数".
    from tests.factories import add_open_round, add_org, add_person, assign

    with transaction(engine) as session:
        town = add_org(session, "测试镇党委", "committee")
        village = add_org(
            session, "东村党支部", "village", parent_id=town.id, members=3, representatives=20
        )
        firm = add_org(
            session, "甲企业党支部", "enterprise", parent_id=town.id, members=2, staff=50
        )
        round_ = add_open_round(session)
        for org in (village, firm):
            member = add_person(session, f"{org.name}党员", org, "member")
            assign(session, round_, member, org, "satisfaction", "members")
        round_id = round_.id
    with Session(engine) as session:
        path = write_workbook(session, round_id=round_id, path=tmp_path)  # type: ignore[arg-type]
    sheet = load_workbook(path)["党员群众满意度测评汇总表"]
    headers = [cell.value for cell in sheet[1]]
    assert headers[3:5] == ["群众人数", "群众口径"]
    assert "群众代表人数" not in headers
    rows = {
        row[0]: dict(zip(headers, row, strict=True))
        for row in sheet.iter_rows(min_row=2, values_only=True)
    }
    assert rows["甲企业党支部"]["群众口径"] == "全体职工（无职代会）"
    assert rows["甲企业党支部"]["群众人数"] == 50
    assert rows["东村党支部"]["群众口径"] == "村(居)民代表"
