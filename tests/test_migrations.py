"""The schema is owned by Alembic: empty → head works, twice, and matches the models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.schema import CreateTable
from sqlmodel import SQLModel

from storage.db import alembic_config, current_revision, make_engine, upgrade
from tests.databases import fresh_postgres_database, postgres_server_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path):
    """An engine on a database with no tables at all."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    server = postgres_server_url()
    if not server:
        pytest.skip("CEPING_TEST_DATABASE_URL not set: PostgreSQL migrations run in CI's PG pass")
    with fresh_postgres_database(server) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def test_empty_database_upgrades_to_head_twice(empty_engine: Engine) -> None:
    head = ScriptDirectory.from_config(alembic_config(empty_engine)).get_current_head()
    assert current_revision(empty_engine) is None

    upgrade(empty_engine)
    upgrade(empty_engine)

    assert current_revision(empty_engine) == head
    tables = set(inspect(empty_engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables


def test_migrations_match_the_models(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    with empty_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []


def test_migrations_have_a_single_head(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    heads = ScriptDirectory.from_config(alembic_config(engine)).get_heads()
    assert len(heads) == 1, f"merge the migration heads: {heads}"


_CHECK = re.compile(r"CONSTRAINT (\w+) CHECK \(")


def _checks(create_table: str) -> dict[str, str]:
    """Name → condition of every CHECK constraint in a CREATE TABLE statement."""
    found: dict[str, str] = {}
    for match in _CHECK.finditer(create_table):
        depth, end = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(create_table[end], 0)
            end += 1
        found[match[1]] = " ".join(create_table[match.end() : end - 1].split())
    return found


def test_the_check_constraints_built_from_the_enums_match_the_migration(tmp_path: Path) -> None:
    # Alembic's comparison ignores CHECK constraints, so compare their SQL text on SQLite,
    # which keeps each table's CREATE statement exactly as the migration issued it.
    engine = make_engine(f"sqlite:///{tmp_path / 'checks.db'}")
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        migrated = {name: sql for name, sql in rows}
    engine.dispose()
    for table in SQLModel.metadata.sorted_tables:
        built = str(CreateTable(table).compile(dialect=engine.dialect))
        assert _checks(built) == _checks(migrated[table.name]), table.name
    assert _checks(migrated["organization"])["ck_organization_category"].startswith("category IN")
