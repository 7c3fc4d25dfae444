"""Rounds scoped to categories, and the quarterly re-grading of 两新 organizations, from the CLI.

Issue 9 points 6, 7 and 11 (docs/rules.md §2, §11, §3.5): ``--categories 村,社区`` assigns only
villages and communities; ``--kind quarterly`` re-grades the sampled 两新 branches and carries
the others' last final grade forward, the workbook shows 晋位/降级/持平, and the round's
phases plan their own reminders. 机关事业单位 are inspected only when the round says with which
sheet.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, col, select

from bot.workbook import write_workbook
from jobs.planner import plan_due
from storage.db import make_engine, transaction
from storage.models import Assignment, GradeDecision, Organization, Person, Round, TelegramAccount
from storage.review import round_regrade
from surveys.i18n import t
from surveys.review import Movement
from surveys.rules import Grade
from tests.test_cli import SHANGHAI, cli, local, run  # noqa: F401 (the fixture)

ORGS = """名称,类别,党员人数,代表人数,职工人数,职代会,上级
测试镇党委,党委,,,,,
东村党支部,村,30,20,,否,测试镇党委
西社区党支部,社区,25,15,,,测试镇党委
甲企业党支部,非公企业,10,0,50,否,测试镇党委
乙企业党支部,非公企业,8,0,40,否,测试镇党委
丙协会党支部,社会组织,6,0,12,否,测试镇党委
中心小学党支部,机关事业单位,20,10,60,是,测试镇党委
"""
PEOPLE = """姓名,手机,组织,角色
张三,13800000001,东村党支部,党员
钱七,13800000005,西社区党支部,党员
孙八,13800000006,甲企业党支部,党员
李九,13800000010,乙企业党支部,党员
周十,13800000011,丙协会党支部,党员
吴一,13800000012,中心小学党支部,党员
周九,13800000007,测试镇党委,工作组
"""


@pytest.fixture
def town(cli: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:  # noqa: F811
    """A township with 2 村(社区), 3 两新 and a school, imported from the command line."""
    (tmp_path / "orgs.csv").write_text(ORGS, encoding="utf-8")
    (tmp_path / "people.csv").write_text(PEOPLE, encoding="utf-8")
    code, _, err = run(capsys, "import", str(tmp_path / "orgs.csv"), str(tmp_path / "people.csv"))
    assert code == 0, err
    return tmp_path


def _assigned(database_url: str, round_id: int) -> dict[str, set[str]]:
    with Session(make_engine(database_url)) as session:
        rows = session.exec(
            select(Organization.name, Assignment.instrument_id)
            .join(Assignment, col(Assignment.org_id) == Organization.id)
            .where(Assignment.round_id == round_id)
        ).all()
    found: dict[str, set[str]] = {}
    for name, instrument in rows:
        found.setdefault(name, set()).add(instrument)
    return found


def test_a_round_scoped_to_villages_and_communities_assigns_only_them(
    town: Path, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    code, _, err = run(
        capsys, "round", "create", "2027年度村社区",
        "--categories", "村,社区",
        "--deadline", f"satisfaction={local(10)}",
        "--deadline", f"inspection={local(12)}",
    )  # fmt: skip
    assert code == 0, err
    assigned = _assigned(database_url, 1)
    assert sorted(assigned) == ["东村党支部", "西社区党支部"]
    with Session(make_engine(database_url)) as session:
        round_ = session.get(Round, 1)
    assert round_ is not None and round_.options == {"categories": ["village", "community"]}


def test_a_round_names_the_sheet_its_institutions_are_inspected_with(
    town: Path, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    deadlines = ("--deadline", f"inspection={local(12)}")
    assert run(capsys, "round", "create", "默认", *deadlines)[0] == 0
    assert "中心小学党支部" not in _assigned(database_url, 1), "the seeds give them no sheet"
    code, _, err = run(
        capsys, "round", "create", "机关用村表", *deadlines, "--institution-sheet", "village"
    )
    assert code == 0, err
    assert _assigned(database_url, 2)["中心小学党支部"] == {"inspection_village"}


def test_bad_categories_and_samples_are_refused_in_one_line(
    town: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deadline = ("--deadline", f"satisfaction={local(10)}")
    code, out, err = run(capsys, "round", "create", "x", *deadline, "--categories", "党委")
    assert code == 1 and out == []
    assert err == [t("round.error.bad_option", key="categories", value="党委")]
    code, _, err = run(
        capsys, "round", "create", "y", *deadline, "--kind", "quarterly", "--sample", "9"
    )
    assert code == 1 and err == [t("round.error.sample_size", size=9, available=3)]


def _decide(database_url: str, round_id: int, name: str, grade: Grade) -> None:
    with transaction(make_engine(database_url)) as session:
        org = session.exec(select(Organization).where(Organization.name == name)).one()
        assert org.id is not None
        session.add(
            GradeDecision(
                round_id=round_id,
                org_id=org.id,
                proposed_grade=grade.value,
                final_grade=grade.value,
                locked=True,
                decided_at=datetime.now(UTC),
            )
        )


def test_a_quarterly_round_re_grades_the_sample_and_carries_the_rest_forward(
    town: Path, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    # Last year's grades of the 两新 organizations (丙协会 was never graded).
    assert (
        run(capsys, "round", "create", "2026年度", "--deadline", f"satisfaction={local(3)}")[0] == 0
    )
    _decide(database_url, 1, "甲企业党支部", Grade.AVERAGE)
    _decide(database_url, 1, "乙企业党支部", Grade.FAIRLY_GOOD)

    deadline = local(5)
    code, _, err = run(
        capsys, "round", "create", "2027年第一季度重新评定",
        "--kind", "quarterly", "--branches", "甲企业党支部,丙协会党支部",
        "--deadline", f"satisfaction={deadline}", "--open",
    )  # fmt: skip
    assert code == 0, err
    assert sorted(_assigned(database_url, 2)) == ["丙协会党支部", "甲企业党支部"]

    _decide(database_url, 2, "甲企业党支部", Grade.GOOD)
    engine = make_engine(database_url)
    with Session(engine) as session:
        names = dict(session.exec(select(Organization.id, Organization.name)).all())
        rows = {names[r.org_id]: r for r in round_regrade(session, round_id=2) or []}
    assert sorted(rows) == ["丙协会党支部", "乙企业党支部", "甲企业党支部"], "两新 only"
    assert (rows["甲企业党支部"].previous, rows["甲企业党支部"].movement) == (
        Grade.AVERAGE,
        Movement.UP,
    )
    carried = rows["乙企业党支部"]
    assert (carried.sampled, carried.current, carried.movement) == (
        False,
        Grade.FAIRLY_GOOD,
        Movement.SAME,
    )
    assert rows["丙协会党支部"].previous is None and rows["丙协会党支部"].current is None

    with Session(engine) as session:
        path = write_workbook(session, round_id=2, path=town)
    sheet = load_workbook(path)["上级党组织评分定级表"]
    header = [cell.value for cell in sheet[1]]
    assert header[-2:] == ["上次等次", "变化"]
    by_name = {row[1]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert by_name["甲企业党支部"][-2:] == ("一般", "晋位")

    # Its own reminders: the sampled branch's member is reminded before its deadline.
    with transaction(engine) as session:
        person = session.exec(select(Person).where(Person.name == "孙八")).one()
        session.add(
            TelegramAccount(
                person_id=person.id, telegram_user_id=5001, chat_id=5001, bound_via="invitation"
            )
        )
    due = datetime.fromisoformat(deadline).replace(tzinfo=SHANGHAI).astimezone(UTC)
    with Session(engine) as session:
        planned = plan_due(session, now=due - timedelta(hours=23), zone=SHANGHAI)
    assert [(m.round_id, m.chat_id) for m in planned if m.kind == "reminder"] == [(2, 5001)]


def test_a_sample_by_size_is_drawn_from_the_two_new_pool_and_repeatable(
    town: Path, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    args = ("--kind", "quarterly", "--sample", "2", "--deadline", f"satisfaction={local(5)}")
    assert run(capsys, "round", "create", "Q1", *args)[0] == 0
    with Session(make_engine(database_url)) as session:
        round_ = session.get(Round, 1)
        two_new = session.exec(
            select(Organization.id).where(col(Organization.category).in_(["enterprise", "social"]))
        ).all()
    assert round_ is not None and round_.options["kind"] == "quarterly_regrade"
    sample = round_.options["sample"]
    assert len(sample) == 2 and set(sample) <= set(two_new)
    assert len(_assigned(database_url, 1)) == 2
