"""An organizer imports the township roster: all problems reported at once, nothing half-written."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import Engine, func
from sqlmodel import select

from storage.db import transaction
from storage.models import Organization, Person, PersonRole
from storage.roster import ImportReport, RosterFileError, import_roster
from surveys.roster import normalize_phone

DATA = Path(__file__).parent / "data" / "roster"
NOW = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)

ORG_HEADER = ["名称", "类别", "党员人数", "代表人数", "职工人数", "职代会", "上级"]
PEOPLE_HEADER = ["姓名", "手机", "组织", "角色"]
ORGS = [
    ["测试镇党委", "党委", "", "", "", "", ""],
    ["东村党支部", "村", "30", "20", "", "否", "测试镇党委"],
    ["实验小学党支部", "机关事业单位", "12", "8", "40", "是", "测试镇党委"],
]
PEOPLE = [
    ["张三", "13800000001", "东村党支部", "书记、班子成员、党员"],
    ["李四", "13800000002", "东村党支部", "党员"],
    ["王老师", "13800000003", "实验小学党支部", "职工代表"],
    ["周九", "13800000007", "测试镇党委", "工作组"],
]


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    """A workbook with the given sheets, in order."""
    workbook = openpyxl.Workbook()
    workbook.remove(workbook.active)
    for title, rows in sheets.items():
        sheet = workbook.create_sheet(title)
        for row in rows:
            sheet.append(row)
    workbook.save(path)
    return path


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    """A CSV file in the given encoding, as Excel or WPS would save it."""
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def roster_xlsx(
    tmp_path: Path,
    orgs: list[list[object]] | None = None,
    people: list[list[object]] | None = None,
    name: str = "roster.xlsx",
) -> Path:
    """The small township roster as a workbook, with optional replacement rows."""
    return write_xlsx(
        tmp_path / name,
        {
            "组织": [ORG_HEADER, *(ORGS if orgs is None else orgs)],
            "人员": [PEOPLE_HEADER, *(PEOPLE if people is None else people)],
        },
    )


def run_import(engine: Engine, paths: list[Path], dry_run: bool = False) -> ImportReport:
    """Import in one transaction, as the CLI does."""
    with transaction(engine) as session:
        return import_roster(session, paths, now=NOW, dry_run=dry_run)


def counts(engine: Engine) -> tuple[int, int, int]:
    """How many organizations, people and roles the database holds."""
    with transaction(engine) as session:
        return tuple(  # type: ignore[return-value]
            session.exec(select(func.count()).select_from(model)).one()
            for model in (Organization, Person, PersonRole)
        )


def problem_codes(report: ImportReport) -> list[tuple[str, int | None, str | None, str]]:
    """(sheet, row, column, code) of every problem."""
    return [(p.sheet, p.row, p.column, p.code) for p in report.problems]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("13812345678", "13812345678"),
        ("+86 138-1234-5678", "13812345678"),
        ("0086 13812345678", "13812345678"),
        ("8613812345678", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("13812345678.0", "13812345678"),
        ("12812345678", None),  # second digit must be 3–9
        ("1381234567", None),  # ten digits
        ("021-12345678", None),  # a landline
        ("", None),
    ],
)
def test_phone_numbers_are_normalised_to_eleven_mainland_digits(
    written: str, expected: str | None
) -> None:
    assert normalize_phone(written) == expected


def test_a_workbook_with_chinese_sheets_creates_the_township(engine: Engine, tmp_path: Path):
    report = run_import(engine, [roster_xlsx(tmp_path)])

    assert report.ok
    assert sorted(report.organizations.created) == sorted(row[0] for row in ORGS)
    assert len(report.people.created) == 4
    with transaction(engine) as session:
        village = session.exec(select(Organization).where(Organization.name == "东村党支部")).one()
        township = session.exec(select(Organization).where(Organization.name == "测试镇党委")).one()
        school = session.exec(
            select(Organization).where(Organization.name == "实验小学党支部")
        ).one()
        zhang = session.exec(select(Person).where(Person.phone == "13800000001")).one()
        roles = session.exec(select(PersonRole.role).where(PersonRole.person_id == zhang.id)).all()
    assert (village.category, village.members, village.representatives) == ("village", 30, 20)
    assert village.parent_id == township.id and township.parent_id is None
    assert township.category == "committee"
    assert school.has_workers_congress and school.staff == 40
    assert sorted(roles) == ["committee", "member", "secretary"]


def test_two_csv_files_with_normalised_phones(engine: Engine):
    report = run_import(engine, [DATA / "organizations.csv", DATA / "people.csv"])

    assert report.ok, report.problems
    assert counts(engine)[:2] == (4, 9)
    with transaction(engine) as session:
        phones = set(session.exec(select(Person.phone)).all())
    assert phones == {f"1380000000{i}" for i in range(1, 10)}


def test_gbk_csv_as_saved_by_excel_in_china(engine: Engine, tmp_path: Path):
    orgs = write_csv(tmp_path / "组织.csv", [ORG_HEADER, *ORGS], encoding="gbk")
    people = write_csv(tmp_path / "人员.csv", [PEOPLE_HEADER, *PEOPLE], encoding="gbk")
    assert "东村".encode("gbk") in orgs.read_bytes()  # really GBK, not UTF-8

    report = run_import(engine, [orgs, people])

    assert report.ok, report.problems
    with transaction(engine) as session:
        names = set(session.exec(select(Organization.name)).all())
    assert names == {"测试镇党委", "东村党支部", "实验小学党支部"}


def test_utf8_csv_with_bom_reads_its_first_header(engine: Engine, tmp_path: Path):
    orgs = write_csv(tmp_path / "orgs.csv", [ORG_HEADER, *ORGS], encoding="utf-8-sig")
    people = write_csv(tmp_path / "people.csv", [PEOPLE_HEADER, *PEOPLE], encoding="utf-8-sig")
    assert orgs.read_bytes().startswith(b"\xef\xbb\xbf")

    report = run_import(engine, [orgs, people])

    assert report.ok, report.problems
    assert len(report.organizations.created) == 3


def test_english_headers_and_sheet_names_with_padding(engine: Engine, tmp_path: Path):
    org_header = [" name ", "Category", "members", "representatives", "staff", "congress", "parent"]
    path = write_xlsx(
        tmp_path / "en.xlsx",
        {
            "people": [
                ["name", "phone", "org", "roles"],
                ["Li Si", "13800000002", "East village", "member, committee"],
            ],
            "organizations": [
                org_header,
                ["Township", "committee", "", "", "", "", ""],
                ["East village", "village", "30", "20", "", "no", "Township"],
            ],
        },
    )

    report = run_import(engine, [path])

    assert report.ok, report.problems
    assert report.organizations.created == ["Township", "East village"]
    assert report.people.created == ["Li Si"]


def test_unnamed_sheets_are_taken_in_order(engine: Engine, tmp_path: Path):
    path = write_xlsx(
        tmp_path / "plain.xlsx",
        {"Sheet1": [ORG_HEADER, *ORGS], "Sheet2": [PEOPLE_HEADER, *PEOPLE]},
    )
    assert run_import(engine, [path]).ok


def test_a_bad_phone_is_reported_with_its_excel_row(engine: Engine, tmp_path: Path):
    people = [*PEOPLE[:2], ["王老师", "1380000", "实验小学党支部", "职工代表"]]

    report = run_import(engine, [roster_xlsx(tmp_path, people=people)])

    assert problem_codes(report) == [("人员", 4, "phone", "bad_phone")]
    assert report.problems[0].value == "1380000"
    assert counts(engine) == (0, 0, 0)


def test_control_and_bidi_characters_are_refused_with_the_row(engine: Engine, tmp_path: Path):
    # Issue 10, item 5: 张\u202e三 was imported and showed as another name in every report.
    orgs = [*ORGS, ["西村\u200b党支部", "村", "10", "10", "", "", "测试镇党委"]]
    people = [*PEOPLE, ["张\u202e三", "13800000004", "东村党支部", "党员\x7f"]]

    report = run_import(engine, [roster_xlsx(tmp_path, orgs=orgs, people=people)])

    assert problem_codes(report) == [
        ("组织", 5, "name", "control_characters"),
        ("人员", 6, "name", "control_characters"),
        ("人员", 6, "roles", "control_characters"),
        ("人员", 6, "roles", "unknown_role"),
    ]
    shown = [p.value for p in report.problems][:3]
    assert shown == ["西村<U+200B>党支部", "张<U+202E>三", "党员<U+007F>"]
    assert counts(engine) == (0, 0, 0)


def test_an_unknown_organization_or_parent(engine: Engine, tmp_path: Path):
    orgs = [*ORGS, ["西村党支部", "村", "10", "10", "", "", "某某镇党委"]]
    people = [*PEOPLE, ["赵六", "13800000004", "北村党支部", "党员"]]

    report = run_import(engine, [roster_xlsx(tmp_path, orgs=orgs, people=people)])

    assert problem_codes(report) == [
        ("组织", 5, "parent", "unknown_parent"),
        ("人员", 6, "org", "unknown_org"),
    ]


def test_a_missing_column_is_named(engine: Engine, tmp_path: Path):
    path = write_xlsx(
        tmp_path / "r.xlsx",
        {
            "组织": [ORG_HEADER, *ORGS],
            "人员": [["姓名", "组织", "角色"], ["张三", "东村党支部", "党员"]],
        },
    )

    report = run_import(engine, [path])

    assert problem_codes(report) == [("人员", 1, "phone", "missing_column")]


def test_the_same_phone_twice_is_a_duplicate_person(engine: Engine, tmp_path: Path):
    people = [*PEOPLE, ["张三丰", "138 0000 0001", "东村党支部", "党员"]]

    report = run_import(engine, [roster_xlsx(tmp_path, people=people)])

    assert problem_codes(report) == [("人员", 6, "phone", "duplicate_person")]


def test_an_empty_people_sheet(engine: Engine, tmp_path: Path):
    report = run_import(engine, [roster_xlsx(tmp_path, people=[])])

    assert problem_codes(report) == [("人员", None, None, "empty_sheet")]


def test_a_parent_cycle_is_refused(engine: Engine, tmp_path: Path):
    orgs = [
        ["甲党支部", "村", "10", "10", "", "", "乙党支部"],
        ["乙党支部", "村", "10", "10", "", "", "甲党支部"],
    ]
    people = [["张三", "13800000001", "甲党支部", "党员"]]

    report = run_import(engine, [roster_xlsx(tmp_path, orgs=orgs, people=people)])

    assert [p.code for p in report.problems] == ["parent_cycle"]
    assert report.problems[0].value == "甲党支部 → 乙党支部 → 甲党支部"


def test_a_file_with_many_problems_reports_them_all_and_writes_nothing(
    engine: Engine, tmp_path: Path
):
    orgs = [
        *ORGS,
        ["东村党支部", "村", "30", "20", "", "", "测试镇党委"],  # row 5: duplicate
        ["南村党支部", "乡镇", "-3", "1.5", "", "也许", "测试镇党委"],  # row 6
    ]
    people = [
        ["张三", "13800000001", "东村党支部", "党员、村长"],  # row 2: unknown role
        ["李四", "02112345678", "东村党支部", "党员"],  # row 3: landline
        ["", "13800000005", "东村党支部", "党员"],  # row 4: no name
        ["张三丰", "138 0000 0001", "东村党支部", "村长"],  # row 5: unknown role, 张三's phone
    ]

    report = run_import(engine, [roster_xlsx(tmp_path, orgs=orgs, people=people)])

    assert problem_codes(report) == [
        ("组织", 6, "category", "unknown_category"),
        ("组织", 6, "members", "bad_count"),
        ("组织", 6, "representatives", "bad_count"),
        ("组织", 6, "congress", "bad_yes_no"),
        ("组织", 5, "name", "duplicate_org"),
        ("人员", 2, "roles", "unknown_role"),
        ("人员", 3, "phone", "bad_phone"),
        ("人员", 4, "name", "missing_value"),
        ("人员", 5, "roles", "unknown_role"),
        ("人员", 5, "phone", "duplicate_person"),
    ]
    assert counts(engine) == (0, 0, 0)


def test_importing_the_same_file_twice_changes_nothing(engine: Engine, tmp_path: Path):
    path = roster_xlsx(tmp_path)
    run_import(engine, [path])
    before = counts(engine)

    again = run_import(engine, [path])

    assert again.ok and again.changes == 0
    assert again.organizations.unchanged == 3 and again.people.unchanged == 4
    assert counts(engine) == before


def test_a_changed_file_updates_counts_names_and_roles(engine: Engine, tmp_path: Path):
    run_import(engine, [roster_xlsx(tmp_path)])
    orgs = [ORGS[0], ["东村党支部", "村", "32", "20", "", "否", "测试镇党委"], ORGS[2]]
    people = [
        ["张三", "13800000001", "东村党支部", "书记、党员"],  # no longer on the committee
        ["李思", "13800000002", "东村党支部", "党员、班子成员"],  # renamed, new role
        PEOPLE[2],
    ]  # 周九 left out

    report = run_import(engine, [roster_xlsx(tmp_path, orgs=orgs, people=people, name="v2.xlsx")])

    assert report.organizations.updated == ["东村党支部"]
    assert sorted(report.people.updated) == ["张三", "李思"]
    assert report.people.unchanged == 1
    assert report.people.not_in_file == ["周九"]
    with transaction(engine) as session:
        village = session.exec(select(Organization).where(Organization.name == "东村党支部")).one()
        li = session.exec(select(Person).where(Person.phone == "13800000002")).one()
        li_roles = session.exec(select(PersonRole.role).where(PersonRole.person_id == li.id)).all()
        zhang = session.exec(select(Person).where(Person.phone == "13800000001")).one()
        zhang_roles = session.exec(
            select(PersonRole.role).where(PersonRole.person_id == zhang.id)
        ).all()
        kept = session.exec(select(Person).where(Person.phone == "13800000007")).one_or_none()
    assert village.members == 32
    assert li.name == "李思" and sorted(li_roles) == ["committee", "member"]
    assert sorted(zhang_roles) == ["member", "secretary"]
    assert kept is not None  # missing from the file is reported, not deleted


def test_dry_run_reports_changes_and_writes_nothing(engine: Engine, tmp_path: Path):
    report = run_import(engine, [roster_xlsx(tmp_path)], dry_run=True)

    assert report.dry_run and report.ok
    assert len(report.organizations.created) == 3 and len(report.people.created) == 4
    assert counts(engine) == (0, 0, 0)


def test_files_that_cannot_be_a_roster(tmp_path: Path, engine: Engine):
    with pytest.raises(RosterFileError) as missing:
        run_import(engine, [tmp_path / "nowhere.xlsx"])
    assert missing.value.code == "not_found"
    with pytest.raises(RosterFileError) as which:
        run_import(engine, [DATA / "people.csv"])
    assert which.value.code == "which_files"
    one_sheet = write_xlsx(tmp_path / "one.xlsx", {"Sheet1": [ORG_HEADER]})
    with pytest.raises(RosterFileError) as sheets:
        run_import(engine, [one_sheet])
    assert sheets.value.code == "two_sheets"


def test_the_example_roster_imports_cleanly_from_xlsx_and_from_csv(engine: Engine):
    examples = Path(__file__).parents[1] / "examples"

    from_xlsx = run_import(engine, [examples / "roster.xlsx"], dry_run=True)
    from_csv = run_import(engine, [examples / "organizations.csv", examples / "people.csv"])

    assert from_xlsx.ok and from_csv.ok
    assert from_xlsx.organizations.created == from_csv.organizations.created
    assert from_xlsx.people.created == from_csv.people.created


def test_the_work_group_leader_and_the_county_reviewer_are_roster_roles(
    engine: Engine, tmp_path: Path
) -> None:
    # Issue 9 points 8 and 9 (docs/rules.md §9, §10): roles of their own, in the roster.
    people = [
        *PEOPLE,
        ["林组长", "13800000010", "测试镇党委", "工作组、工作组组长"],
        ["县审核", "13800000011", "测试镇党委", "县委组织部"],
    ]
    orgs = write_csv(tmp_path / "orgs.csv", [ORG_HEADER, *ORGS])
    report = run_import(
        engine, [orgs, write_csv(tmp_path / "people.csv", [PEOPLE_HEADER, *people])]
    )
    assert report.ok, report.problems
    with transaction(engine) as session:
        held = session.exec(
            select(Person.name, PersonRole.role).join(PersonRole, PersonRole.person_id == Person.id)
        ).all()
    assert ("林组长", "work_group_leader") in held and ("林组长", "inspector") in held
    assert ("县审核", "county_reviewer") in held
