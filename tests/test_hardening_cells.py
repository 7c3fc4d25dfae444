"""Issue 10, item 1: roster and typed text is written to XLSX and CSV as text, never formulas."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import Engine, update
from sqlmodel import Session

from bot.invitations import InviteRow, write_invitations_csv, write_invitations_xlsx
from bot.workbook import write_workbook
from storage.db import transaction
from storage.grading import add_rectification
from storage.models import Answer, Person
from tests.factories import build_scored_township

NOW = datetime(2027, 3, 20, 2, 30, tzinfo=UTC)
HOSTILE = ['=HYPERLINK("http://x","y")', "=1+2", "+1", "-1+1", "@SUM(A1)", "\tx", "\rx"]


def _assert_text(value: object, cell_type: str, original: str) -> None:
    assert cell_type == "s", (original, cell_type)
    assert value == "'" + original


def test_hostile_names_and_reasons_are_text_in_the_export(engine: Engine, tmp_path: Path) -> None:
    with transaction(engine) as session:
        ids = build_scored_township(session)
    with transaction(engine) as session:
        session.exec(update(Answer).where(Answer.reason == "台账缺失").values(reason="=1+2"))  # type: ignore[call-overload]
        session.exec(update(Person).where(Person.name == "王组长").values(name="@SUM(A1)"))  # type: ignore[call-overload]
        add_rectification(
            session,
            org_id=ids["east"],
            round_id=ids["round"],
            matter='=HYPERLINK("http://evil","点我")',
            measures="-2+3",
            due_on=date(2027, 4, 30),
            responsible="+张书记",
            person_id=None,
            now=NOW,
        )
    with Session(engine) as session:
        path = write_workbook(session, round_id=ids["round"], path=tmp_path, locale="zh_CN")
    book = load_workbook(path)
    formulas = [
        (sheet.title, cell.coordinate, cell.value)
        for sheet in book.worksheets
        for row in sheet.iter_rows()
        for cell in row
        if cell.data_type == "f"
    ]
    assert formulas == []
    ledger = book["整改台账"]
    matter, measures, responsible = ledger["B2"], ledger["C2"], ledger["E2"]
    _assert_text(matter.value, matter.data_type, '=HYPERLINK("http://evil","点我")')
    _assert_text(measures.value, measures.data_type, "-2+3")
    _assert_text(responsible.value, responsible.data_type, "+张书记")
    detail = book["观摩打分明细"]
    values = {cell.value for row in detail.iter_rows(min_row=2) for cell in row}
    assert "'=1+2" in values and "'@SUM(A1)" in values


def _rows() -> list[InviteRow]:
    return [
        InviteRow(
            name=name, phone="13800000001", org="-村", roles="+", link="https://t.me/b?start=x"
        )
        for name in HOSTILE
    ]


def test_hostile_names_are_text_in_the_invitation_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "inv.xlsx"
    write_invitations_xlsx(path, _rows(), "zh_CN")
    sheet = load_workbook(path).active
    assert sheet is not None
    # XML turns a stored CR into LF when read back, so compare the text after that.
    for index, original in enumerate(HOSTILE, start=2):
        cell = sheet.cell(row=index, column=1)
        _assert_text(cell.value, cell.data_type, original.replace("\r", "\n"))
        org = sheet.cell(row=index, column=3)
        _assert_text(org.value, org.data_type, "-村")


def test_hostile_names_are_escaped_in_the_invitation_csv(tmp_path: Path) -> None:
    path = tmp_path / "inv.csv"
    write_invitations_csv(path, _rows(), "zh_CN")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    assert [row[0] for row in rows] == ["'" + name for name in HOSTILE]
    assert {row[2] for row in rows} == {"'-村"} and {row[3] for row in rows} == {"'+"}
