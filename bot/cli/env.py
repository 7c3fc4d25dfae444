"""What every command shares: the settings and locale, refusals, the database."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from storage.db import Engine, alembic_config, current_revision, make_engine
from storage.settings import Settings
from surveys.i18n import t

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A refusal to show as one catalog line."""

    def __init__(self, key: str, exit_code: int = EXIT_FAILED, **params: object) -> None:
        super().__init__(key)
        self.key, self.exit_code, self.params = key, exit_code, params


class UsageError(Exception):
    """argparse found the command line malformed."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports usage errors as one catalog line instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@dataclass
class CliEnv:
    """What every command needs: the settings and the locale to speak in."""

    settings: Settings
    locale: str

    def say(self, message: str, /, **params: object) -> None:
        """Print one catalog line to stdout."""
        print(t(message, self.locale, **params))

    def text(self, message: str, /, **params: object) -> str:
        """One catalog text."""
        return t(message, self.locale, **params)

    def local(self, moment: datetime | None) -> str:
        """A UTC time shown in the configured time zone."""
        if moment is None:
            return t("common.none", self.locale)
        return t("common.datetime", self.locale, value=moment.astimezone(self.settings.zone))


# --- Database --------------------------------------------------------------------------------


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    """An engine for one command, disposed afterwards."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _heads(engine: Engine) -> set[str]:
    """The schema revisions the code expects."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())


@contextmanager
def database(env: CliEnv) -> Iterator[Engine]:
    """The configured database, refused unless ``ceping init`` brought it to the latest schema."""
    with engine_for(env.settings.database_url) as engine:
        if current_revision(engine) not in _heads(engine):
            raise CliError("cli.not_at_head")
        yield engine
