"""Shared fixtures: a fresh, migrated database per test on SQLite or PostgreSQL.

The backend is SQLite unless ``CEPING_TEST_DATABASE_URL`` names a PostgreSQL server;
then the run creates its own database there and drops it at the end.
"""

from __future__ import annotations

import gc
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from storage.db import make_engine, upgrade
from tests.databases import fresh_postgres_database, postgres_server_url, truncate_all

pytest_plugins = [
    "tests.fakebot.fixtures",
    "tests.bot_fixtures",
    "tests.support_processes",
]


@pytest.fixture(scope="session")
def backend() -> str:
    """Which database this run tests: 'sqlite' or 'postgresql'."""
    return "postgresql" if postgres_server_url() else "sqlite"


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database at head, made once per run: a SQLite file to copy, or a PG database."""
    server = postgres_server_url()
    if server:
        with fresh_postgres_database(server) as url:
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            yield url
        return
    path = tmp_path_factory.mktemp("template") / "ceping.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    yield str(path)


@pytest.fixture(scope="session")
def _postgres_engine(_migrated_template: str) -> Iterator[Engine | None]:
    if not postgres_server_url():
        yield None
        return
    engine = make_engine(_migrated_template)
    yield engine
    engine.dispose()


@pytest.fixture
def database_url(_migrated_template: str, _postgres_engine: Engine | None, tmp_path: Path) -> str:
    """The URL of an empty, migrated database for this test alone."""
    if _postgres_engine is not None:
        truncate_all(_postgres_engine)
        return _migrated_template
    target = tmp_path / "ceping.db"
    shutil.copyfile(_migrated_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def engine(database_url: str, _postgres_engine: Engine | None) -> Iterator[Engine]:
    """An engine on this test's fresh database."""
    if _postgres_engine is not None:
        yield _postgres_engine
        return
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    """``ceping run`` tunes the garbage collector and the GIL's switch interval for its
    process (bot/collector.py); a test
    that calls it must not leave the rest of the suite with that process's settings."""
    threshold, switching = gc.get_threshold(), sys.getswitchinterval()
    yield
    if gc.get_freeze_count():
        gc.unfreeze()
    gc.set_threshold(*threshold)
    sys.setswitchinterval(switching)
