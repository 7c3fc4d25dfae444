"""``ceping export``: the round's workbook."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli.env import EXIT_OK, CliEnv, CliError, database
from storage.db import transaction
from storage.rounds import current_round, get_round, list_rounds
from storage.types import utcnow


def cmd_export(args: argparse.Namespace, env: CliEnv) -> int:
    """Write the round's workbook (summary sheets, tallies, grades)."""
    from bot.workbook import write_workbook

    out = Path(args.out)
    if out.suffix.lower() != ".xlsx":
        raise CliError("cli.export.bad_out", path=args.out)
    with database(env) as engine, transaction(engine) as session:
        round_id = args.round
        if round_id is None:
            open_now = current_round(session) or next(iter(list_rounds(session)), None)
            if open_now is None:
                raise CliError("cli.export.no_round")
            round_id = open_now.id
        else:
            get_round(session, round_id)
        written = write_workbook(
            session,
            round_id=round_id,
            path=out,
            locale=env.locale,
            zone=env.settings.zone,
            now=utcnow(),
        )
    env.say("cli.export.written", path=str(written))
    return EXIT_OK
