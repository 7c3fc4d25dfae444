"""The ``ceping`` command line: database, roster, rounds, invitations, the bot, the demo.

Every line meant for the organizer comes from the catalog (``cli.po``) in CEPING_LOCALE.
Bad input ends with one line on stderr and a non-zero exit code, never a traceback, and the
bot token is never printed.

One module per command group; ``main`` is the console script's entry.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bot.cli.env import EXIT_FAILED, EXIT_USAGE, CliEnv, CliError, UsageError
from bot.cli.parser import build_parser
from storage.errors import DatabaseError
from storage.roster import RosterFileError
from storage.rounds import RoundError
from storage.settings import Settings, SettingsError, load_settings
from surveys.i18n import t

# --- Entry point -----------------------------------------------------------------------------


def _fallback_locale() -> str:
    """The locale to complain in when the settings themselves are broken."""
    return "en" if os.environ.get("CEPING_LOCALE", "").startswith("en") else "zh_CN"


def _redact(text: str, settings: Settings | None) -> str:
    """The text with the bot token blanked out, first line only."""
    line = (text.strip().splitlines() or [""])[0]
    if settings is not None and settings.bot_token is not None:
        token = settings.bot_token.get_secret_value()
        if token:
            line = line.replace(token, "***")
    return line[:300]


def _fail(line: str, code: int) -> int:
    """Print one line to stderr and return the exit code."""
    print(line, file=sys.stderr)
    return code


def _dispatch(args: argparse.Namespace, env: CliEnv) -> int:
    """Run the chosen command, turning every refusal into one catalog line."""
    locale = env.locale
    try:
        return int(args.handler(args, env))
    except CliError as error:
        return _fail(t(error.key, locale, **error.params), error.exit_code)
    except RoundError as error:
        return _fail(t(f"round.error.{error.code}", locale, **error.params), EXIT_FAILED)
    except RosterFileError as error:
        return _fail(t(f"roster.file.{error.code}", locale, **error.params), EXIT_FAILED)
    except SettingsError as error:
        return _fail(t("cli.settings_error", locale, detail=str(error)), EXIT_USAGE)
    except DatabaseError as error:
        detail = _redact(str(getattr(error, "orig", None) or error), env.settings)
        return _fail(t("cli.database_error", locale, detail=detail), EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail(t("cli.interrupted", locale), 130)
    except BrokenPipeError:  # the output was piped into `head`: nothing left to say
        return EXIT_FAILED
    except Exception as error:  # never a traceback for the organizer; the kind helps a bug report
        detail = _redact(str(error), env.settings)
        return _fail(
            t("cli.unexpected", locale, kind=type(error).__name__, detail=detail), EXIT_FAILED
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ceping`` console script."""
    try:
        settings = load_settings()
    except SettingsError as error:
        return _fail(t("cli.settings_error", _fallback_locale(), detail=str(error)), EXIT_USAGE)
    env = CliEnv(settings=settings, locale=settings.locale)
    parser = build_parser(env.locale)
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except UsageError as error:
        return _fail(t("cli.usage_error", env.locale, detail=str(error)), EXIT_USAGE)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    return _dispatch(args, env)


if __name__ == "__main__":
    sys.exit(main())
