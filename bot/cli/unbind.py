"""``ceping unbind``: release someone's Telegram account."""

from __future__ import annotations

import argparse

from bot.cli.env import EXIT_OK, CliEnv, CliError, database
from storage.db import transaction
from storage.types import utcnow


def cmd_unbind(args: argparse.Namespace, env: CliEnv) -> int:
    """Release a person's Telegram account so they can register again with another."""
    from storage.registration import UnbindOutcome, unbind_by_phone

    with database(env) as engine, transaction(engine) as session:
        outcome, name = unbind_by_phone(session, phone=args.phone, now=utcnow())
    if outcome is UnbindOutcome.UNKNOWN_PHONE:
        raise CliError("cli.unbind.unknown_phone", phone=args.phone)
    if outcome is UnbindOutcome.NOT_BOUND:
        raise CliError("cli.unbind.not_bound", name=name)
    env.say("cli.unbind.done", name=name)
    return EXIT_OK
