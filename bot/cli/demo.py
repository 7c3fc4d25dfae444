"""``ceping demo``: build a graded demo township and print its table."""

from __future__ import annotations

import argparse
import unicodedata
from pathlib import Path
from typing import Any

from bot.cli.env import EXIT_OK, CliEnv, CliError, engine_for
from storage.db import Session, transaction, upgrade
from storage.reports import round_name
from storage.types import utcnow

# --- demo ------------------------------------------------------------------------------------


def _demo_url(database: str | None) -> tuple[str, Path | None]:
    """The demo database URL and, for SQLite, its file (replaced if it exists)."""
    if database is None:
        path = Path.cwd() / "ceping-demo.db"
        return f"sqlite:///{path}", path
    if database.startswith("sqlite:///"):
        return database, Path(database.removeprefix("sqlite:///"))
    if database.startswith(("sqlite:", "postgresql")):
        return database, None
    # A bare file name is the friendliest way to say where the demo goes.
    path = Path(database)
    return f"sqlite:///{path.resolve()}", path


def _remove_sqlite_file(path: Path) -> None:
    """Delete a previous demo database and its WAL side files."""
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        candidate.unlink(missing_ok=True)


def cmd_demo(args: argparse.Namespace, env: CliEnv) -> int:
    """Build a demo township with answers in a fresh database and print its tally."""
    from bot.demo import DemoError, build_demo, decide_one

    url, path = _demo_url(args.database)
    if path is not None:
        _remove_sqlite_file(path)
    env.say("cli.demo.building", target=str(path) if path else url.split("@")[-1])
    with engine_for(url) as engine:
        upgrade(engine)
        now = utcnow()
        try:
            demo = build_demo(engine, now=now)
        except DemoError as error:
            raise CliError(f"cli.demo.{error.code}") from None
        with transaction(engine) as session:
            print_round_table(session, demo.round_id, env, now=now)
        decided = decide_one(engine, round_id=demo.round_id, now=now)
        if decided is not None:
            env.say(
                "grading.cli.decision",
                name=decided.name,
                proposed=env.text(f"grade.{decided.proposed}"),
                grade=env.text(f"grade.{decided.final}"),
            )
            if decided.review_states:
                states = [env.text(f"review.state.{state}") for state in decided.review_states]
                env.say("grading.cli.review_path", name=decided.name, path=" → ".join(states))
    if path is not None:
        env.say("cli.demo.done", path=str(path))
    return EXIT_OK


def _width(text: str) -> int:
    """Display width in a terminal: wide (CJK) characters take two cells."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cell(text: str, width: int, right: bool = False) -> str:
    """Pad text to a display width."""
    padding = " " * max(0, width - _width(text))
    return padding + text if right else text + padding


def _percent(value: Any) -> str:
    """A share as a percentage with one decimal, or a dash."""
    return "—" if value is None else f"{value * 100:.1f}%"


def _score(value: Any) -> str:
    """A score half up without trailing zero decimals (88.50 → 88.5), or a dash."""
    from surveys.text import short_number

    return "—" if value is None else short_number(value)


def _participation(coverage: dict[Any, Any], audience: str, env: CliEnv) -> str:
    """respondents/required with a mark when behind the target."""
    from surveys.categories import Audience

    item = coverage.get(Audience(audience))
    if item is None:
        return "—"
    mark = "" if item.status == "met" else "*"
    return f"{item.respondents}/{item.required}{mark}"


def print_round_table(session: Session, round_id: int, env: CliEnv, *, now: Any = None) -> None:
    """Per-branch participation, 三率, scores and grades: each pool on its own basis.

    ``now`` judges the survey deadline (参与面未达标); a small group's satisfaction and
    composite numbers are hidden, never its grade (docs/rules.md §7).
    """
    from bot.report_views import grade_cell, pool_lines, status_line
    from storage.tallies import round_tally

    tally = round_tally(session, round_id=round_id, now=now)
    name = round_name(session=session, round_id=round_id)
    env.say("cli.demo.title", round=name, branches=len(tally.branches))
    columns = [
        (env.text("cli.table.branch"), 30, False),
        (env.text("cli.table.members"), 9, True),
        (env.text("cli.table.masses"), 9, True),
        (env.text("cli.table.satisfaction_rate"), 8, True),
        (env.text("cli.table.awareness_rate"), 8, True),
        (env.text("cli.table.participation_rate"), 8, True),
        (env.text("cli.table.self_evaluation"), 7, True),
        (env.text("cli.table.satisfaction"), 7, True),
        (env.text("cli.table.inspection"), 7, True),
        (env.text("cli.table.superior"), 7, True),
        (env.text("cli.table.score"), 7, True),
        (env.text("cli.table.grade"), 6, False),
        (env.text("cli.table.note"), 0, False),
    ]
    print("  ".join(_cell(title, width, right) for title, width, right in columns).rstrip())
    locale = env.locale
    for branch in tally.branches:
        rates = branch.rates
        notes = []
        if branch.small_group:
            notes.append(env.text("cli.table.small_group", threshold=tally.threshold))
        if branch.vetoed and (branch.proposal is None or branch.proposal.reason != "veto"):
            notes.append(env.text("cli.table.veto"))
        if branch.proposal is not None and branch.proposal.reason != "threshold":
            notes.append(env.text(f"proposal_reason.{branch.proposal.reason}"))
        if branch.proposal is not None and branch.proposal.tie_at_edge:
            notes.append(env.text("proposal.tie_at_edge"))
        status = status_line(branch, locale)
        if status is not None and branch.proposal is None:
            notes.append(status)
        values = [
            branch.name,
            _participation(branch.coverage, "members", env),
            _participation(branch.coverage, "masses", env),
            _percent(rates.satisfaction if rates else None),
            _percent(rates.awareness if rates else None),
            _percent(rates.participation if rates else None),
            _score(branch.self_evaluation),
            _score(branch.satisfaction_score),
            _score(branch.inspection),
            _score(branch.superior),
            _score(branch.grading_score),
            grade_cell(branch, locale),
            "；".join(notes),
        ]
        print(
            "  ".join(
                _cell(value, width, right)
                for value, (_, width, right) in zip(values, columns, strict=True)
            ).rstrip()
        )
    for line in pool_lines(tally, locale):
        print(line)
    env.say("grading.cli.legend")
