"""Someone tries ceping without Telegram: ``ceping demo`` builds a township and shows its grades."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from bot.cli import main
from bot.demo import PLANS, TOWNSHIP
from storage.db import make_engine
from storage.models import Assignment, Organization, Response, SatisfactionBallots, Veto
from storage.settings import settings
from surveys.i18n import t
from surveys.rules import GRADE_ORDER


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[str], Path]:
    """Run ``ceping demo --database …`` once for the module: exit code, printed lines, file."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    path.write_text("an old file that the demo must replace")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path.parent)
        for name in ("CEPING_BOT_TOKEN", "CEPING_BOT_USERNAME", "CEPING_LOCALE"):
            patch.delenv(name, raising=False)
        patch.setenv("CEPING_DATABASE_URL", "sqlite:///unused.db")
        settings.cache_clear()
        output = io.StringIO()
        with redirect_stdout(output):
            code = main(["demo", "--database", f"sqlite:///{path}"])
    settings.cache_clear()
    return code, output.getvalue().splitlines(), path


def table_rows(lines: list[str]) -> dict[str, list[str]]:
    """The printed table as branch name → cells (cells are separated by two or more spaces)."""
    names = {plan.name for plan in PLANS}
    rows = {}
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] in names:
            rows[cells[0]] = cells
    return rows


def test_the_demo_exits_cleanly_and_lists_every_branch(demo: tuple[int, list[str], Path]):
    code, lines, _ = demo

    assert code == 0
    assert set(table_rows(lines)) == {plan.name for plan in PLANS}
    assert len(PLANS) == 18  # 13 villages and communities, 2 enterprises, 1 social, 2 institutions


def test_all_four_grades_are_proposed_within_the_quotas(demo: tuple[int, list[str], Path]):
    _, lines, _ = demo
    grade_names = {t(f"grade.{grade}"): grade for grade in GRADE_ORDER}

    proposed = [grade_names[cells[11]] for cells in table_rows(lines).values()]

    assert set(proposed) == set(GRADE_ORDER)
    # 18 graded branches: at most ⌊0.2·18⌋ = 3 好, at least ⌈0.1·18⌉ = 2 较差.
    assert proposed.count(GRADE_ORDER[0]) <= 3
    assert proposed.count(GRADE_ORDER[-1]) >= 2
    assert t("cli.table.quota", graded=18, max_good=3, min_poor=2) in lines


def test_the_demo_shows_a_veto_a_small_group_and_branches_behind_target(
    demo: tuple[int, list[str], Path],
):
    _, lines, _ = demo
    rows = table_rows(lines)
    notes = {name: cells[12] if len(cells) > 12 else "" for name, cells in rows.items()}

    assert any(t("proposal_reason.veto") in note for note in notes.values())
    assert any(t("cli.table.small_group", threshold=5) in note for note in notes.values())
    assert sum(1 for cells in rows.values() if cells[1].endswith("*")) >= 3


def test_the_demo_database_holds_the_round_without_revealing_who_answered_what(
    demo: tuple[int, list[str], Path],
):
    _, _, path = demo
    with Session(make_engine(f"sqlite:///{path}")) as session:
        township = session.exec(select(Organization).where(Organization.name == TOWNSHIP)).one()
        branches = session.exec(
            select(func.count())
            .select_from(Organization)
            .where(Organization.parent_id == township.id)
        ).one()
        ballots = session.exec(select(func.sum(SatisfactionBallots.ballots))).one()
        survey_times = session.exec(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.instrument_id == "satisfaction", Assignment.submitted_at.is_not(None))
        ).one()
        named_surveys = session.exec(
            select(func.count())
            .select_from(Response)
            .where(Response.instrument_id == "satisfaction")
        ).one()
        vetoes = session.exec(select(func.count()).select_from(Veto)).one()
        inspections = session.exec(
            select(func.count())
            .select_from(Response)
            .where(Response.instrument_id.in_(["inspection_village", "inspection_two_new"]))
        ).one()
    assert branches == 18
    assert ballots > 500  # hundreds of members and masses answered…
    assert survey_times == 0 and named_surveys == 0  # …and no row says who or when
    assert vetoes == 1
    # Both township inspectors scored every branch but the two 机关事业单位: the seeds give
    # them no inspection sheet, and the round keeps the default (docs/rules.md §3.5).
    assert inspections == 2 * 16
