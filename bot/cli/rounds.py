"""``ceping round create|list|open|close``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bot.cli.env import EXIT_OK, CliEnv, database
from storage.db import Session, transaction
from storage.lookups import assignment_counts
from storage.rounds import (
    RoundError,
    close_round,
    create_round,
    list_rounds,
    open_round,
    parse_options,
    parse_phase_time,
    resolve_sample,
    round_phases,
)
from storage.types import utcnow
from surveys.errors import RuleError
from surveys.options import parse_categories
from surveys.review import RoundKind

# --- round -----------------------------------------------------------------------------------


def _deadline_lines(session: Session, round_id: int, env: CliEnv) -> None:
    """Each phase's window in local time."""
    for phase in round_phases(session, round_id):
        name = env.text(f"phase.{phase.phase}")
        if phase.opens_at is None:
            env.say("cli.round.phase_line", phase=name, deadline=env.local(phase.deadline))
        else:
            env.say(
                "cli.round.phase_line_opens",
                phase=name,
                deadline=env.local(phase.deadline),
                opens=env.local(phase.opens_at),
            )


def add_scope_arguments(creating: argparse.ArgumentParser, h: Callable[[str], str]) -> None:
    """--categories, --kind, --sample, --branches, --institution-sheet (docs/rules.md §2, §11)."""
    creating.add_argument("--categories", metavar="村,社区", help=h("categories"))
    creating.add_argument(
        "--kind", choices=["annual", "quarterly"], default="annual", help=h("kind")
    )
    creating.add_argument("--sample", type=int, metavar="N", help=h("sample"))
    creating.add_argument("--branches", metavar="NAME,NAME", help=h("branches"))
    creating.add_argument(
        "--institution-sheet", choices=["none", "village", "two_new"], help=h("institution_sheet")
    )


def _scope_options(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """The round's scope and kind from the command's flags, over any --option."""
    if args.categories:
        try:
            options["categories"] = parse_categories(args.categories)
        except RuleError as error:
            raise RoundError(error.code, **error.params) from None
    if args.kind == "quarterly":
        options["kind"] = RoundKind.QUARTERLY_REGRADE.value
    if args.institution_sheet:
        options["institution_sheet"] = args.institution_sheet
    return options


def cmd_round_create(args: argparse.Namespace, env: CliEnv) -> int:
    """Create a round (and open it with --open); a quarterly one re-grades 两新 by sample."""
    zone = env.settings.zone
    deadlines = dict(parse_phase_time(text, zone) for text in args.deadline)
    opens_at = dict(parse_phase_time(text, zone) for text in args.opens or [])
    options = _scope_options(args, parse_options(args.option or []))
    now = utcnow()
    with database(env) as engine, transaction(engine) as session:
        names = [n for n in (args.branches or "").replace("，", ",").split(",") if n.strip()]
        if args.sample is not None or names:
            options["sample"] = resolve_sample(
                session, options, size=args.sample, names=names, seed=args.name
            )
        round_ = create_round(
            session,
            name=args.name,
            deadlines=deadlines,
            options=options,
            opens_at=opens_at,
            now=now,
        )
        assert round_.id is not None
        if args.open:
            open_round(session, round_id=round_.id, now=now)
        count = _assignment_count(session, round_.id)
        env.say("cli.round.created", id=round_.id, name=round_.name, assignments=count)
        _deadline_lines(session, round_.id, env)
        if args.open:
            env.say("cli.round.opened", id=round_.id, name=round_.name)
    return EXIT_OK


def _assignment_count(session: Session, round_id: int) -> int:
    """How many assignments a round has."""
    return assignment_counts(session=session, round_id=round_id)[0]


def cmd_round_list(args: argparse.Namespace, env: CliEnv) -> int:
    """Every round with its status, assignments and deadlines."""
    with database(env) as engine, transaction(engine) as session:
        rounds = list_rounds(session)
        if not rounds:
            env.say("cli.round.none")
        for round_ in rounds:
            assert round_.id is not None
            total, done = assignment_counts(session=session, round_id=round_.id)
            env.say(
                "cli.round.list_line",
                id=round_.id,
                name=round_.name,
                status=env.text(f"cli.round.status.{round_.status}"),
                assignments=total,
                submitted=done,
            )
            _deadline_lines(session, round_.id, env)
    return EXIT_OK


def cmd_round_open(args: argparse.Namespace, env: CliEnv) -> int:
    """Open a round."""
    with database(env) as engine, transaction(engine) as session:
        round_ = open_round(session, round_id=args.id, now=utcnow())
        env.say("cli.round.opened", id=round_.id, name=round_.name)
    return EXIT_OK


def cmd_round_close(args: argparse.Namespace, env: CliEnv) -> int:
    """Close a round."""
    with database(env) as engine, transaction(engine) as session:
        round_ = close_round(session, round_id=args.id, now=utcnow())
        env.say("cli.round.closed", id=round_.id, name=round_.name)
    return EXIT_OK
