"""The engine: a pooled PostgreSQL connection that died while resting is replaced, not used."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import storage.db
from storage.db import make_engine


def test_a_connection_killed_while_resting_is_replaced(
    backend: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgresql":
        pytest.skip("SQLite has no server that can drop a connection")
    monkeypatch.setattr(storage.db, "IDLE_BEFORE_PING", 0.0)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            killed = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        # The pool now holds exactly that one connection, resting; the next checkout takes it.
        killer = make_engine(database_url)
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": killed})
        killer.dispose()

        with engine.connect() as connection:
            now_serving = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    finally:
        engine.dispose()

    assert now_serving != killed
