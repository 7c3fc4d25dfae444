"""SQLite writers of one process take turns on a lock of their own, not SQLite's busy wait.

SQLite's busy handler sleeps between tries (1, 2, 5, 10 … 100 ms), so a writer that found
the file locked slept on after the holder committed: at a meeting, when the submissions'
folds queued up, taps waited 80–105 ms for a lock that had been free for most of it.
Writers of one process now wait on a lock of their own, handed over at the commit; only
another process's writer still meets SQLite's busy handler.

These tests make a connection's busy timeout 0: a writer that reached SQLite's lock while
another held it would fail at once with "database is locked".
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from storage.db import make_engine, transaction, writers_waiting
from tests.support_races import wait_until


def _no_busy_wait(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA busy_timeout=0")


@pytest.fixture
def impatient(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file whose connections never wait on SQLite's own lock."""
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.db'}")
    event.listen(engine, "connect", _no_busy_wait)  # after storage.db's own tuning
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE tap (n INTEGER)"))
    yield engine
    engine.dispose()


def _write(engine: Engine, n: int) -> None:
    with transaction(engine) as session:
        session.connection().execute(text("INSERT INTO tap (n) VALUES (:n)"), {"n": n})


def _taps(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT n FROM tap ORDER BY n")).scalars())


def _writer(engine: Engine, n: int, failures: list[BaseException]) -> threading.Thread:
    """A thread that writes ``n``; what it raises goes to ``failures``."""

    def write() -> None:
        try:
            _write(engine, n)
        except BaseException as error:
            failures.append(error)

    return threading.Thread(target=write)


@pytest.mark.parametrize("second_engine", [False, True], ids=["one engine", "two engines"])
def test_a_second_writer_waits_for_the_first_to_commit(
    impatient: Engine, second_engine: bool
) -> None:
    """Two engines of one process on one file (a test's second 'bot') queue alike."""
    other = make_engine(str(impatient.url)) if second_engine else impatient
    event.listen(other, "connect", _no_busy_wait)
    failures: list[BaseException] = []
    waiter = _writer(other, 2, failures)
    try:
        with transaction(impatient) as holder:
            holder.connection().execute(text("INSERT INTO tap (n) VALUES (1)"))
            waiter.start()
            wait_until(lambda: failures or writers_waiting(other))
            assert failures == []
        waiter.join(30)
    finally:
        if other is not impatient:
            other.dispose()
    assert failures == []
    assert _taps(impatient) == [1, 2]


def test_the_turn_is_handed_on_after_a_rollback(impatient: Engine) -> None:
    with pytest.raises(RuntimeError), transaction(impatient) as session:
        session.connection().execute(text("INSERT INTO tap (n) VALUES (1)"))
        raise RuntimeError("the step failed")
    _write(impatient, 2)
    assert _taps(impatient) == [2]
    assert writers_waiting(impatient) == 0


def test_a_transaction_begun_after_a_commit_in_the_same_thread_gets_its_turn(
    impatient: Engine,
) -> None:
    """As a fold does, from the committed session's after_commit hook."""
    with transaction(impatient) as session:
        session.connection().execute(text("INSERT INTO tap (n) VALUES (1)"))
        event.listen(session, "after_commit", lambda _session: _write(impatient, 2), once=True)
    assert _taps(impatient) == [1, 2]
