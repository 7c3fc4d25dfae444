"""A tap's transaction runs on the event loop's thread when it need not wait (issue 12).

Handing a millisecond's transaction to a worker thread cost the bot more CPU than the
transaction itself: the loop and the thread passed the GIL back and forth some 80 times a
tap. On a SQLite file a quick transaction (storage.db.quick_transaction) runs right where it
is asked for, but only if nothing would make it wait: the writers' turn is free and no writer
of another process holds SQLite's lock. Otherwise it gives up before it wrote anything
(WouldWait) and the tap waits on a worker thread as before. Its connections leave the WAL's
checkpoints to a thread, and a fold it asks for runs on the folds' thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, text

import bot.answering
import storage.db as db
from bot import answer_taps
from storage import ballots
from storage.db import (
    CHECKPOINTS,
    WouldWait,
    make_engine,
    quick_checkpoints,
    quick_transaction,
    transaction,
    writers_waiting,
)
from storage.types import utcnow
from tests.support_races import wait_until
from tests.test_anonymity import CHOICE_ITEMS, LABELS, _answer, _seat_voters, _submit

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness

HOLD_SECONDS = 20.0
"""How long a test's other writer holds the lock at most: a quick transaction that waited
for it would come back after this, having written, instead of giving up at once."""


@pytest.fixture
def sqlite_file(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite file with one table, through storage.db's engine."""
    engine = make_engine(f"sqlite:///{tmp_path / 'quick.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE tap (n INTEGER)"))
    yield engine
    engine.dispose()


def _insert(n: int) -> Any:
    def work(session: Any) -> str:
        session.connection().execute(text("INSERT INTO tap (n) VALUES (:n)"), {"n": n})
        return threading.current_thread().name

    return work


def _taps(engine: Engine) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT n FROM tap ORDER BY n")).scalars())


class OtherWriter:
    """A writer of this process on a thread of its own, holding the write lock until told."""

    def __init__(self, engine: Engine, statement: str) -> None:
        self.holding, self._release = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._hold, args=(engine, statement))

    def _hold(self, engine: Engine, statement: str) -> None:
        with transaction(engine) as session:
            session.connection().execute(text(statement))
            self.holding.set()
            self._release.wait(HOLD_SECONDS)

    def start(self) -> None:
        """Begin, write, and wait (up to HOLD_SECONDS) before committing."""
        self._thread.start()
        assert self.holding.wait(HOLD_SECONDS)

    def commit(self) -> None:
        self._release.set()
        self._thread.join(HOLD_SECONDS)


def test_a_quick_transaction_runs_on_the_calling_thread(sqlite_file: Engine) -> None:
    ran_on = quick_transaction(sqlite_file, _insert(1))
    assert ran_on == threading.current_thread().name
    assert _taps(sqlite_file) == [1]


def test_it_gives_up_without_writing_while_a_writer_of_this_process_holds_the_turn(
    sqlite_file: Engine,
) -> None:
    other = OtherWriter(sqlite_file, "INSERT INTO tap (n) VALUES (1)")
    other.start()
    try:
        with pytest.raises(WouldWait):
            quick_transaction(sqlite_file, _insert(2))
    finally:
        other.commit()
    assert _taps(sqlite_file) == [1]
    assert quick_transaction(sqlite_file, _insert(3)) and _taps(sqlite_file) == [1, 3]


def test_it_gives_up_while_another_process_holds_the_lock(sqlite_file: Engine) -> None:
    """Another process's writer is a connection outside storage.db (no turns to take)."""
    other = sqlite3.connect(sqlite_file.url.database or "", isolation_level=None)
    other.execute("PRAGMA busy_timeout=0")
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO tap (n) VALUES (1)")
        with pytest.raises(WouldWait):
            quick_transaction(sqlite_file, _insert(2))
        other.execute("COMMIT")
    finally:
        other.close()
    assert _taps(sqlite_file) == [1]


def test_other_databases_have_no_quick_transactions(engine: Engine, backend: str) -> None:
    """PostgreSQL (and SQLite in memory) run every transaction on a worker thread."""
    if backend == "sqlite":
        engine = make_engine("sqlite://")
    ran: list[bool] = []
    with pytest.raises(WouldWait):
        quick_transaction(engine, lambda _session: ran.append(True))
    assert ran == []


def test_quick_commits_are_checkpointed_on_a_thread(
    sqlite_file: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quick connections turn SQLite's own checkpoint off; without ours the WAL would hold
    at least one frame for each of the commits."""
    monkeypatch.setattr(db, "CHECKPOINT_EVERY", 50)
    commits = 600
    for n in range(commits):
        quick_transaction(sqlite_file, _insert(n))
        if n % 50 == 49:
            CHECKPOINTS.submit(lambda: None).result()  # the checkpoint asked for is done
    assert quick_checkpoints(sqlite_file) == commits // 50
    with sqlite_file.connect() as connection:
        page = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
    wal = Path(f"{sqlite_file.url.database}-wal").stat().st_size
    assert wal < commits // 3 * (page + 24)
    assert len(_taps(sqlite_file)) == commits


def test_a_fold_asked_for_in_a_quick_transaction_runs_on_the_folds_thread(
    sqlite_file: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    folded: list[tuple[Engine, str]] = []
    monkeypatch.setattr(
        ballots,
        "run_fold",
        lambda engine, _request: folded.append((engine, threading.current_thread().name)),
    )

    def submit(session: Any) -> None:
        _insert(1)(session)
        ballots.fold_after_commit(session, now=utcnow(), round_id=1)

    quick_transaction(sqlite_file, submit)
    ballots.FOLDS.submit(lambda: None).result()
    assert len(folded) == 1
    engine, thread = folded[0]
    assert engine is sqlite_file
    assert thread.startswith("ceping-fold")


# --- Through the bot --------------------------------------------------------------------------


def _spy_on_taps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads on which taps were applied."""
    threads: list[str] = []
    apply = answer_taps.apply_tap

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return apply(*args, **kwargs)

    monkeypatch.setattr(bot.answering, "apply_tap", spy)
    return threads


async def test_a_meeting_s_taps_run_on_the_event_loop(
    bot: BotHarness, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = _spy_on_taps(monkeypatch)
    (voter,) = _seat_voters(bot, 1)
    phone = bot.phone(voter.user_id)
    await _answer(phone, voter)
    await _submit(phone)
    loop_thread = threading.current_thread().name
    assert threads, "no tap was applied"
    if backend == "sqlite":
        assert set(threads) == {loop_thread}
    else:
        assert loop_thread not in threads


async def test_a_tap_waits_on_a_thread_while_another_writer_holds_the_lock(
    bot: BotHarness, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tap is applied once the other writer commits, with nothing lost."""
    if backend != "sqlite":
        pytest.skip("SQLite's single writer: PostgreSQL's writers do not queue for one lock")
    threads = _spy_on_taps(monkeypatch)
    (voter,) = _seat_voters(bot, 1)
    phone = bot.phone(voter.user_id)
    await phone.send("/surveys")
    other = OtherWriter(bot.engine, "UPDATE round SET name = name")
    await asyncio.to_thread(other.start)
    try:
        tapped = asyncio.ensure_future(phone.tap(next(b for b in phone.buttons if "满意度" in b)))
        await asyncio.to_thread(wait_until, lambda: writers_waiting(bot.engine) or tapped.done())
        assert not tapped.done()  # the tap is queued for the lock, not answered without it
    finally:
        await asyncio.to_thread(other.commit)
    await tapped
    first = CHOICE_ITEMS[0]
    assert LABELS[(first.id, voter.ballot[first.id])] in phone.buttons  # its first question
    # Tried on the loop, given up at BEGIN, then applied once on a worker thread.
    loop_thread = threading.current_thread().name
    assert threads[0] == loop_thread and len(threads) == 2, threads
    assert threads[1] != loop_thread
