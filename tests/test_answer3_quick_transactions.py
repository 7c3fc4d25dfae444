"""A tap's transaction runs on the event loop's thread when it need not wait (issue 12).

Handing a millisecond's transaction to a worker thread cost the bot more CPU than the
transaction itself: the loop and the thread passed the GIL back and forth some 80 times a
tap (about 100 on PostgreSQL). A quick transaction (storage.db.quick_transaction) runs right
where it is asked for, but only if nothing would make it wait. On a SQLite file: the
writers' turn is free and no writer of another process holds SQLite's lock. On PostgreSQL: no
other transaction holds a row it locks for longer than a millisecond, and no statement takes
longer than a quarter of a second. Otherwise it gives up, with nothing written (WouldWait),
and the tap waits on a worker thread as before. SQLite's quick connections leave the WAL's
checkpoints to a thread, and a fold a quick transaction asks for runs on the folds' thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, text

import bot.answering
import bot.common as bot_common
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


@pytest.fixture
def postgresql(engine: Engine, backend: str) -> Iterator[Engine]:
    """This run's PostgreSQL database with one table more (dropped afterwards)."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL's quick transactions")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE tap (n INTEGER)"))
    try:
        yield engine
    finally:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE tap"))


@pytest.fixture
def quick_database(backend: str, request: pytest.FixtureRequest) -> Engine:
    """A database with quick transactions and a ``tap`` table: a SQLite file or PostgreSQL."""
    return request.getfixturevalue("sqlite_file" if backend == "sqlite" else "postgresql")


def _insert(n: int) -> Any:
    def work(session: Any) -> str:
        session.connection().execute(text("INSERT INTO tap (n) VALUES (:n)"), {"n": n})
        return threading.current_thread().name

    return work


def _write(engine: Engine, n: int) -> None:
    with transaction(engine) as session:
        session.connection().execute(text("INSERT INTO tap (n) VALUES (:n)"), {"n": n})


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


def test_a_quick_transaction_runs_on_the_calling_thread(quick_database: Engine) -> None:
    ran_on = quick_transaction(quick_database, _insert(1))
    assert ran_on == threading.current_thread().name
    assert _taps(quick_database) == [1]


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


async def _queued_behind_another_writer(engine: Engine) -> tuple[OtherWriter, asyncio.Future[Any]]:
    """Another writer of this process holds the turn; a quick writer gave up and queued."""
    other = OtherWriter(engine, "INSERT INTO tap (n) VALUES (1)")
    await asyncio.to_thread(other.start)
    with pytest.raises(WouldWait) as gave_up:
        quick_transaction(engine, _insert(2))
    queued = asyncio.ensure_future(db.wait_for_turn(engine, gave_up.value, 5.0))
    await asyncio.to_thread(wait_until, lambda: writers_waiting(engine) == 1)
    return other, queued


async def test_a_quick_writer_queues_for_the_turn_and_writes_with_the_turn_kept_for_it(
    sqlite_file: Engine,
) -> None:
    other, queued = await _queued_behind_another_writer(sqlite_file)
    try:  # a thread that comes later queues behind it
        later = threading.Thread(target=lambda: _write(sqlite_file, 4))
        later.start()
        await asyncio.to_thread(wait_until, lambda: writers_waiting(sqlite_file) == 2)
    finally:
        await asyncio.to_thread(other.commit)
    kept = await queued
    assert kept is not None
    assert quick_transaction(sqlite_file, _insert(3), kept) == threading.current_thread().name
    await asyncio.to_thread(later.join, HOLD_SECONDS)
    with sqlite_file.connect() as connection:  # in the order they were written
        written = connection.execute(text("SELECT n FROM tap ORDER BY rowid")).scalars()
        assert list(written) == [1, 3, 4]  # first come, first served


async def test_a_turn_kept_for_a_quick_writer_that_does_not_use_it_is_passed_on(
    sqlite_file: Engine,
) -> None:
    other, queued = await _queued_behind_another_writer(sqlite_file)
    await asyncio.to_thread(other.commit)
    kept = await queued
    assert kept is not None

    def refuse(_session: Any) -> None:
        raise LookupError("gave up before writing")

    with pytest.raises(LookupError):
        quick_transaction(sqlite_file, refuse, kept)
    # On a turn still kept, this would wait BUSY_SECONDS and fail ("database is locked").
    await asyncio.to_thread(_write, sqlite_file, 5)
    assert _taps(sqlite_file) == [1, 5]


async def test_a_quick_writer_that_gives_up_waiting_leaves_the_queue(sqlite_file: Engine) -> None:
    other = OtherWriter(sqlite_file, "INSERT INTO tap (n) VALUES (1)")
    await asyncio.to_thread(other.start)
    try:
        with pytest.raises(WouldWait) as gave_up:
            quick_transaction(sqlite_file, _insert(2))
        assert await db.wait_for_turn(sqlite_file, gave_up.value, 0.01) is None
        assert writers_waiting(sqlite_file) == 0
    finally:
        await asyncio.to_thread(other.commit)
    # The turn ended between giving up and queueing: try again at once, nothing kept.
    assert await db.wait_for_turn(sqlite_file, gave_up.value, 5.0) is not None
    assert quick_transaction(sqlite_file, _insert(3)) and _taps(sqlite_file) == [1, 3]


async def test_no_waiting_on_the_loop_for_a_lock_of_another_process(sqlite_file: Engine) -> None:
    other = sqlite3.connect(sqlite_file.url.database or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(WouldWait) as gave_up:
            quick_transaction(sqlite_file, _insert(1))
        waiting = db.wait_for_turn(sqlite_file, gave_up.value, 5.0)
        with pytest.raises(StopIteration) as answered:  # at once, never suspended
            waiting.send(None)
        assert answered.value.value is None
    finally:
        other.execute("ROLLBACK")
        other.close()


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


def test_sqlite_in_memory_has_no_quick_transactions() -> None:
    """Its one connection is shared by every thread: its transactions all run on a worker."""
    engine = make_engine("sqlite://")
    ran: list[bool] = []
    with pytest.raises(WouldWait):
        quick_transaction(engine, lambda _session: ran.append(True))
    assert ran == []


def test_on_postgresql_it_gives_up_without_writing_while_another_transaction_holds_a_row(
    postgresql: Engine,
) -> None:
    quick_transaction(postgresql, _insert(1))
    other = OtherWriter(postgresql, "UPDATE tap SET n = 10 WHERE n = 1")
    other.start()

    def insert_then_update(session: Any) -> None:
        _insert(2)(session)
        session.connection().execute(text("UPDATE tap SET n = 20 WHERE n = 1"))

    try:
        with pytest.raises(WouldWait):
            quick_transaction(postgresql, insert_then_update)
    finally:
        other.commit()
    assert _taps(postgresql) == [10]  # the other's update; nothing of the quick one's
    quick_transaction(postgresql, insert_then_update)  # the row is free again
    assert _taps(postgresql) == [2, 10]


def test_on_postgresql_a_slow_statement_gives_up_without_writing(postgresql: Engine) -> None:
    """A server that slow would hold up every handler: the tap goes to a thread instead.
    (Without the statement timeout this test would sleep a minute, then fail.)"""

    def insert_then_sleep(session: Any) -> None:
        _insert(1)(session)
        session.connection().execute(text("SELECT pg_sleep(60)"))

    with pytest.raises(WouldWait):
        quick_transaction(postgresql, insert_then_sleep)
    assert _taps(postgresql) == []


def test_disposing_an_engine_closes_its_quick_connections(postgresql: Engine) -> None:
    """Else a PostgreSQL database could not be dropped after its engine was disposed."""
    own = make_engine(postgresql.url.render_as_string(hide_password=False))
    quick_transaction(own, _insert(1))
    before = _sessions(postgresql)
    own.dispose()
    assert before - _sessions(postgresql) == 1  # the quick engine's one (the main had none)


def _sessions(engine: Engine) -> int:
    """Sessions open on the database (pg_stat_activity is read afresh in each transaction)."""
    with engine.connect() as connection:
        sessions = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        return int(connection.execute(text(sessions)).scalar_one())


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


def test_requests_for_a_branch_whose_fold_is_queued_join_that_fold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a meeting's end each confirmation asks for its branch's fold; one queued fold not
    yet started serves them all (with the latest time), so fewer folds hold the box's lock."""
    folded: list[tuple[int | None, object]] = []
    monkeypatch.setattr(
        ballots, "run_fold", lambda _engine, request: folded.append((request.org_id, request.now))
    )
    engine = make_engine("sqlite://")
    first = utcnow()
    later = first + timedelta(seconds=1)
    started, release = threading.Event(), threading.Event()

    def hold_the_folds_thread() -> None:
        started.set()
        release.wait(HOLD_SECONDS)

    ballots.FOLDS.submit(hold_the_folds_thread)
    assert started.wait(HOLD_SECONDS)
    try:
        futures = [
            ballots.queue_fold(engine, ballots.FoldRequest(first, 1, 7)),
            ballots.queue_fold(engine, ballots.FoldRequest(later, 1, 7)),
            ballots.queue_fold(engine, ballots.FoldRequest(first, 1, 8)),
        ]
    finally:
        release.set()
    for future in futures:
        future.result(HOLD_SECONDS)
    assert futures[0] is futures[1]
    assert folded == [(7, later), (8, first)]
    # Once its fold has started, a branch's next request gets a fold of its own.
    ballots.queue_fold(engine, ballots.FoldRequest(later, 1, 7)).result(HOLD_SECONDS)
    assert folded == [(7, later), (8, first), (7, later)]
    engine.dispose()


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
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = _spy_on_taps(monkeypatch)
    (voter,) = _seat_voters(bot, 1)
    phone = bot.phone(voter.user_id)
    await _answer(phone, voter)
    await _submit(phone)
    assert threads, "no tap was applied"
    assert set(threads) == {threading.current_thread().name}


LOCK_ASSIGNMENTS = {
    "sqlite": "UPDATE round SET name = name",  # any write takes SQLite's one lock
    "postgresql": "SELECT id FROM assignment FOR UPDATE",  # as a writer of answers does
}


def _tap_is_waiting(engine: Engine, backend: str) -> bool:
    """A tap's transaction is queued for the lock: SQLite's turn, or a PostgreSQL row lock."""
    if backend == "sqlite":
        return writers_waiting(engine) > 0
    waiting = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as connection:
        return connection.execute(text(waiting)).scalar_one() > 0


async def _open_list(bot: BotHarness) -> tuple[Any, Any]:
    """A voter who has opened their list of surveys."""
    (voter,) = _seat_voters(bot, 1)
    phone = bot.phone(voter.user_id)
    await phone.send("/surveys")
    return voter, phone


def _tap_survey(phone: Any) -> asyncio.Future[Any]:
    """Tap the satisfaction survey in the list (the tap is not answered yet)."""
    return asyncio.ensure_future(phone.tap(next(b for b in phone.buttons if "满意度" in b)))


def _shows_first_question(phone: Any, voter: Any) -> bool:
    first = CHOICE_ITEMS[0]
    return LABELS[(first.id, voter.ballot[first.id])] in phone.buttons


async def _tap_while_another_writer_holds_the_lock(
    bot: BotHarness, backend: str, phone: Any
) -> asyncio.Future[Any]:
    """Tap the survey while another writer of this process holds the lock, seen waiting for
    it (the loop free meanwhile: this test runs on it); the writer then commits."""
    holder = OtherWriter(bot.engine, LOCK_ASSIGNMENTS[backend])
    await asyncio.to_thread(holder.start)
    try:
        tapped = _tap_survey(phone)
        await asyncio.to_thread(
            wait_until, lambda: _tap_is_waiting(bot.engine, backend) or tapped.done()
        )
        assert not tapped.done()  # the tap is queued for the lock, not answered without it
    finally:
        await asyncio.to_thread(holder.commit)
    return tapped


async def test_a_tap_waits_on_a_thread_while_another_writer_holds_the_lock(
    bot: BotHarness, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: another transaction holds the row; SQLite: another process the file."""
    threads = _spy_on_taps(monkeypatch)
    voter, phone = await _open_list(bot)
    if backend == "sqlite":
        other = sqlite3.connect(bot.engine.url.database or "", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        tapped = _tap_survey(phone)
        await asyncio.to_thread(wait_until, lambda: len(threads) == 2 or tapped.done())
        assert not tapped.done()  # the tap waits in SQLite's busy handler
        other.execute("COMMIT")
        other.close()
    else:
        tapped = await _tap_while_another_writer_holds_the_lock(bot, backend, phone)
    await tapped
    assert _shows_first_question(phone, voter)
    # Tried on the loop, given up (SQLite: at BEGIN; PostgreSQL: at the lock), then applied
    # once on a worker thread.
    loop_thread = threading.current_thread().name
    assert threads[0] == loop_thread and len(threads) == 2, threads
    assert threads[1] != loop_thread


async def test_a_tap_waits_on_the_loop_while_a_writer_of_this_process_holds_the_turn(
    bot: BotHarness, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite: a fold or a worker thread of this process holds the writers' turn. The tap
    waits for it to be handed on without holding the loop, then runs on the loop's thread:
    on a worker thread it took several times as long (the GIL passed to and fro)."""
    if backend != "sqlite":
        pytest.skip("SQLite's writers' turn")
    threads = _spy_on_taps(monkeypatch)
    voter, phone = await _open_list(bot)
    tapped = await _tap_while_another_writer_holds_the_lock(bot, backend, phone)
    await tapped
    assert _shows_first_question(phone, voter)
    loop_thread = threading.current_thread().name
    assert threads == [loop_thread, loop_thread]


async def test_a_tap_goes_to_a_thread_when_the_turn_is_not_handed_on_soon(
    bot: BotHarness, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's writers' turn")
    monkeypatch.setattr(bot_common, "QUICK_WAIT_SECONDS", 0.05)
    threads = _spy_on_taps(monkeypatch)
    voter, phone = await _open_list(bot)
    holder = OtherWriter(bot.engine, LOCK_ASSIGNMENTS[backend])
    await asyncio.to_thread(holder.start)
    try:
        tapped = _tap_survey(phone)
        await asyncio.to_thread(wait_until, lambda: len(threads) == 2 or tapped.done())
        assert not tapped.done()  # waiting for the turn, now on a worker thread
    finally:
        await asyncio.to_thread(holder.commit)
    await tapped
    assert _shows_first_question(phone, voter)
    assert threads[0] == threading.current_thread().name
    assert threads[1] != threads[0] and len(threads) == 2, threads
