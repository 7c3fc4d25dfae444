"""``ceping surveys check|show``: validate a custom instrument file, print a bundled one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bot.cli.env import EXIT_OK, CliEnv, CliError

# --- surveys ---------------------------------------------------------------------------------


def cmd_surveys_check(args: argparse.Namespace, env: CliEnv) -> int:
    """Validate an instrument file and list every problem."""
    from surveys.instruments import InstrumentError, load_instrument_file

    path = Path(args.file)
    if not path.is_file():
        raise CliError("cli.surveys.not_found", path=args.file)
    try:
        instrument = load_instrument_file(path)
    except InstrumentError as error:
        for problem in error.problems:
            print(
                env.text(
                    "cli.surveys.problem",
                    path=problem.file,
                    where=problem.path,
                    message=problem.message,
                ),
                file=sys.stderr,
            )
        raise CliError("cli.surveys.rejected", count=len(error.problems)) from None
    # Answers must fit their columns too (issue 10, item 7).
    from storage.widths import instrument_width_problems

    too_wide = instrument_width_problems(instrument)
    for message in too_wide:
        print(
            env.text("cli.surveys.problem", path=args.file, where="max_length", message=message),
            file=sys.stderr,
        )
    if too_wide:
        raise CliError("cli.surveys.rejected", count=len(too_wide))
    env.say(
        "cli.surveys.ok",
        path=args.file,
        title=instrument.title.get(env.locale),
        key=instrument.key,
        items=len(instrument.items),
    )
    return EXIT_OK


def cmd_surveys_show(args: argparse.Namespace, env: CliEnv) -> int:
    """Print an instrument's sections, items, points and options."""
    from surveys.instruments import get_instrument, get_instrument_by_key

    try:
        instrument = get_instrument_by_key(args.id) if "@" in args.id else get_instrument(args.id)
    except (KeyError, ValueError):
        raise CliError("cli.surveys.unknown", id=args.id) from None
    locale = env.locale
    kind = "anonymous" if instrument.anonymous else "named"
    env.say(
        "cli.surveys.show.title",
        title=instrument.title.get(locale),
        key=instrument.key,
        phase=env.text(f"phase.{instrument.phase}"),
        kind=env.text(f"cli.surveys.show.{kind}"),
    )
    for section in instrument.sections:
        if section.max_points:
            env.say(
                "cli.surveys.show.section",
                title=section.title.get(locale),
                points=section.max_points,
            )
        else:
            env.say("cli.surveys.show.section_plain", title=section.title.get(locale))
        for item in section.items:
            points = (
                env.text("cli.surveys.show.points", points=item.max_points)
                if item.max_points is not None
                else ""
            )
            env.say("cli.surveys.show.item", id=item.id, text=item.text.get(locale), points=points)
            for option in item.options:
                env.say("cli.surveys.show.option", text=option.text.get(locale))
    return EXIT_OK
