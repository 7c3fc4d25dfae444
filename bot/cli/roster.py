"""``ceping init`` and ``ceping import``: the schema and the roster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli.env import EXIT_OK, CliEnv, CliError, database, engine_for
from storage.db import Session, current_revision, transaction, upgrade
from storage.roster import ImportReport, KindChanges, RosterFileError, import_roster
from storage.rounds import list_rounds, sync_assignments
from storage.types import utcnow
from surveys.roster import RosterProblem

# --- init ------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, env: CliEnv) -> int:
    """Create or upgrade the schema."""
    with engine_for(env.settings.database_url) as engine:
        upgrade(engine)
        env.say("cli.init.done", revision=current_revision(engine))
    return EXIT_OK


# --- import ----------------------------------------------------------------------------------


def problem_line(problem: RosterProblem, env: CliEnv) -> str:
    """One roster problem as a line: where, which value, and why."""
    reason = env.text(f"roster.problem.{problem.code}")
    column = env.text(f"roster.column.{problem.kind}.{problem.column}") if problem.column else ""
    if problem.row is None:
        return env.text("cli.import.problem_sheet", sheet=problem.sheet, reason=reason)
    if problem.value is None:
        return env.text(
            "cli.import.problem_column",
            sheet=problem.sheet,
            row=problem.row,
            column=column,
            reason=reason,
        )
    return env.text(
        "cli.import.problem",
        sheet=problem.sheet,
        row=problem.row,
        column=column,
        value=problem.value,
        reason=reason,
    )


def _print_kind(kind: str, changes: KindChanges, env: CliEnv) -> None:
    """Created / updated / unchanged of one kind, and what the file left out."""
    label = env.text(f"cli.import.kind.{kind}")
    env.say(
        "cli.import.kind",
        kind=label,
        created=len(changes.created),
        updated=len(changes.updated),
        unchanged=changes.unchanged,
    )
    for key, names in (
        ("cli.import.created", changes.created),
        ("cli.import.updated", changes.updated),
        ("cli.import.not_in_file", changes.not_in_file),
    ):
        if names:
            env.say(key, kind=label, names=_names(names, env))


def _names(names: list[str], env: CliEnv, shown: int = 20) -> str:
    """The first names joined with 、, and how many more there are."""
    text = "、".join(names[:shown])
    if len(names) > shown:
        text += env.text("cli.import.and_more", count=len(names) - shown)
    return text


def print_import_report(report: ImportReport, env: CliEnv) -> None:
    """The report of an accepted import."""
    _print_kind("organizations", report.organizations, env)
    _print_kind("people", report.people, env)
    env.say("cli.import.changes", count=report.changes)
    if report.dry_run:
        env.say("cli.import.dry_run")


def cmd_import(args: argparse.Namespace, env: CliEnv) -> int:
    """Import the roster, all or nothing; add assignments the change calls for."""
    if len(args.files) not in (1, 2):
        raise RosterFileError("which_files")
    paths = [Path(name) for name in args.files]
    with database(env) as engine, transaction(engine) as session:
        report = import_roster(session, paths, now=utcnow(), dry_run=args.dry_run)
        if report.ok and not args.dry_run:
            synced = _sync_rounds(session)
    if not report.ok:
        for problem in report.problems:
            print(problem_line(problem, env), file=sys.stderr)
        raise CliError("cli.import.rejected", count=len(report.problems))
    print_import_report(report, env)
    if not args.dry_run:
        for name, added in synced:
            env.say("cli.import.synced", round=name, count=added)
    return EXIT_OK


def _sync_rounds(session: Session) -> list[tuple[str, int]]:
    """Add missing assignments to every round not yet closed (a roster change adds people)."""
    synced = []
    for round_ in list_rounds(session):
        if round_.status != "closed" and round_.id is not None:
            added = sync_assignments(session, round_.id)
            if added:
                synced.append((round_.name, added))
    return synced
