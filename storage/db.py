"""The engine, sessions and schema upgrades (Alembic owns the schema)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event, exc, inspect
from sqlmodel import Session, create_engine

MIGRATIONS = Path(__file__).parent / "migrations"

IDLE_BEFORE_PING = 10.0
"""Seconds a pooled PostgreSQL connection may rest before it is pinged on checkout."""

# SQLite stores NUMERIC as text-affine numbers; SQLAlchemy converts back to Decimal for us.
warnings.filterwarnings("ignore", category=exc.SAWarning, message=".*Decimal objects natively.*")


BUSY_SECONDS = 15.0
"""How long a SQLite writer waits for the write lock before "database is locked"."""

T = TypeVar("T")


class _Waiter:
    """A writer queued for the turn: a thread (``event``) or a quick writer on a loop."""

    def __init__(self, granted: Callable[[], None] | None = None) -> None:
        self.event = threading.Event() if granted is None else None
        self._granted = granted

    def grant(self) -> None:
        """The turn is now this waiter's (called on the thread that handed it on)."""
        if self.event is not None:
            self.event.set()
        elif self._granted is not None:
            self._granted()


class WriterTurns:
    """One SQLite writer at a time per database file in this process, handed over at commit.

    Why: SQLite's own busy handler sleeps between tries (1, 2, 5, 10 … 100 ms), so a writer
    that found the file locked sleeps on after the holder has committed. At a meeting, when
    the submissions' folds queued, taps waited up to 105 ms for a lock that was free most of
    that time. A writer of this process now waits here instead and is given the turn at the
    holder's commit or rollback; SQLite's busy timeout is left for writers of other
    processes.

    The waiters are served in the order they came (first come, first served): a thread, or a
    quick writer of the event loop (:func:`wait_for_turn`), for which the turn is kept
    until it claims it on the loop. Without the order, the folds of a meeting's end (queued
    back to back on their thread) took the turn one after another while the taps woken on
    the loop were still on their way to it, and a confirmation waited 200 ms.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._holder: Any = None  # a pooled connection, or the _Waiter it is kept for
        self._busy = False
        self._queue: deque[_Waiter] = deque()
        self.handed_on = 0  # how many turns have ended: a quick writer's clock (try_take)

    @property
    def waiting(self) -> int:
        """Writers queued for the turn, threads and quick writers alike."""
        return len(self._queue)

    def take(self, connection: Any) -> None:
        """Wait for the turn (as long as SQLite would have), then keep it for this connection."""
        with self._guard:
            if not self._busy:
                self._busy, self._holder = True, connection
                return
            waiter = _Waiter()
            self._queue.append(waiter)
        assert waiter.event is not None
        if not waiter.event.wait(BUSY_SECONDS):
            with self._guard:
                if waiter in self._queue:  # else it was granted meanwhile: take it
                    self._queue.remove(waiter)
                    raise sqlite3.OperationalError("database is locked")
        with self._guard:
            self._holder = connection

    def try_take(self, connection: Any) -> int | None:
        """Take the turn only if it is free and no writer is queued for it; never wait.

        None when taken; else how many turns had ended when it was found taken, for
        :meth:`queue_quick`.
        """
        with self._guard:
            if self._busy:
                return self.handed_on
            self._busy, self._holder = True, connection
            return None

    def queue_quick(self, seen: int, granted: Callable[[], None]) -> _Waiter | None:
        """Queue a quick writer that found the turn taken after ``seen`` turns had ended.

        ``granted`` is called, on the thread that hands the turn on, once the turn is kept
        for it; the writer then claims it (:meth:`claim`) or gives it back (:meth:`give_back`).
        None, and nothing queued, if the turn has ended since: try again at once.
        """
        with self._guard:
            if self.handed_on != seen or not self._busy:
                return None
            waiter = _Waiter(granted)
            self._queue.append(waiter)
            return waiter

    def claim(self, waiter: _Waiter, connection: Any) -> bool:
        """Take the turn kept for this quick writer, for this connection."""
        with self._guard:
            if self._holder is not waiter:
                return False
            self._holder = connection
            return True

    def give_back(self, waiter: _Waiter) -> None:
        """A quick writer that will not use its turn: unqueue it, or pass its turn on."""
        with self._guard:
            if waiter in self._queue:
                self._queue.remove(waiter)
                return
            granted = self._pass_on() if self._holder is waiter else None
        if granted is not None:
            granted.grant()

    def hand_on(self, connection: Any) -> None:
        """End this connection's turn, if it holds it (a rollback may come without one).

        ``connection``: the pool's proxy (commit, rollback) or the DBAPI connection under it
        (the pool's close and invalidate events).
        """
        if connection is None:
            return
        with self._guard:
            holder = self._holder
            if holder is None or not (
                holder is connection or getattr(holder, "dbapi_connection", None) is connection
            ):
                return
            granted = self._pass_on()
        if granted is not None:
            granted.grant()

    def _pass_on(self) -> _Waiter | None:
        """End the turn (the guard held): the first waiter's now, else free."""
        self.handed_on += 1
        if not self._queue:
            self._busy, self._holder = False, None
            return None
        waiter = self._queue.popleft()
        self._holder = waiter
        return waiter


_TURNS: dict[str, WriterTurns] = {}
_TURNS_GUARD = threading.Lock()


def _turns_of(url: str) -> WriterTurns:
    """The turns of one database file, shared by every engine of this process on it."""
    path = str(Path(url.split("///", 1)[1]).resolve())
    with _TURNS_GUARD:
        return _TURNS.setdefault(path, WriterTurns())


_ENGINE_TURNS: weakref.WeakKeyDictionary[Engine, WriterTurns] = weakref.WeakKeyDictionary()


def writers_waiting(engine: Engine) -> int:
    """SQLite writers of this process waiting for their turn on the engine's file (else 0):
    on threads, and quick ones waiting on an event loop (:func:`wait_for_turn`)."""
    turns = _ENGINE_TURNS.get(engine)
    return turns.waiting if turns is not None else 0


def _begin_immediate(connection: Any) -> None:
    """Take the write lock when a transaction starts, so writers queue instead of failing.

    A deferred transaction that reads and then writes fails at once with SQLITE_BUSY
    if another connection wrote in between; IMMEDIATE waits its turn instead. A file's
    writers of this process first take their turn (``WriterTurns``); a quick transaction
    (:func:`quick_transaction`) gives up instead of waiting for it.
    """
    turns = _ENGINE_TURNS.get(connection.engine)
    pooled = connection.connection  # what the dialect's commit and rollback are handed
    try:
        if turns is not None and connection.engine in _MAIN_OF_QUICK:
            kept = _KEPT.get()
            seen = (
                None if kept is not None and turns.claim(kept, pooled) else turns.try_take(pooled)
            )
            if seen is not None:
                raise WouldWait(turns_seen=seen)
        elif turns is not None:
            turns.take(pooled)
        # Straight to the driver: SQLAlchemy's statement machinery (events, cursor, result)
        # costs more than SQLite's BEGIN itself, once per tap.
        pooled.driver_connection.execute("BEGIN IMMEDIATE")
    except BaseException as error:
        if turns is not None:
            turns.hand_on(pooled)
        if isinstance(error, sqlite3.Error):  # as SQLAlchemy's own execute would raise it
            raise exc.OperationalError("BEGIN IMMEDIATE", None, error) from error
        raise


def _take_turns(engine: Engine, turns: WriterTurns) -> None:
    """Hand the turn on right after the DBAPI commit or rollback of the connection holding it.

    Not at check-in: a session's after_commit hook (a fold) begins its own transaction before
    the committed connection goes back to the pool.
    """
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            turns.hand_on(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            turns.hand_on(dbapi_connection)

    def forget(dbapi_connection: Any, *_rest: Any) -> None:
        turns.hand_on(dbapi_connection)  # closed or invalidated while holding: never stuck

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
    event.listen(engine, "close", forget)
    event.listen(engine, "invalidate", forget)
    _ENGINE_TURNS[engine] = turns


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the writer; a busy timeout queues writers, not fails."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(BUSY_SECONDS * 1000)}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Deleted rows are overwritten with zeros, whatever this build of SQLite defaults to.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own BEGIN is deferred).
    dbapi_connection.isolation_level = None


def _note_idle(_dbapi_connection: Any, record: Any) -> None:
    """Remember when a connection went back to the pool."""
    record.info["idle_since"] = time.monotonic()


def _ping_when_rested(engine: Engine) -> None:
    """Ping a pooled connection on checkout only after it rested a while.

    ``pool_pre_ping`` costs a round trip on every checkout, i.e. on every tap of a busy
    meeting, where connections rest for milliseconds. A connection that rested longer
    (the server may have restarted meanwhile) is still pinged; a dead one is replaced
    by the pool, as with pre-ping (SQLAlchemy's documented pessimistic disconnect check).
    """

    def check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(str(error)) from error

    event.listen(engine, "checkin", _note_idle)
    event.listen(engine, "checkout", check)


SQLITE_POOL = 32
"""Pooled SQLite file connections kept open: more than the worker threads that use them
(asyncio's default executor has at most 32), so none is opened and closed per tap."""


def _is_sqlite_file(url: str) -> bool:
    """A SQLite database in a file (an in-memory one has a pool of its own kind)."""
    path = url.split("///", 1)[1] if "///" in url else ""
    return bool(path) and not path.startswith(":memory:")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for SQLite (the embedded default) or PostgreSQL through psycopg 3.

    A failing statement's parameters never reach an exception text or a log: they can be
    someone's answers (issue 8).
    """
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        if _is_sqlite_file(url):
            # Every tap borrows a connection on a worker thread; a pool smaller than the
            # threads would open (and tune) a fresh connection for the overflow each time.
            kwargs.setdefault("pool_size", SQLITE_POOL)
            kwargs.setdefault("max_overflow", SQLITE_POOL)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _tune_sqlite)
        if _is_sqlite_file(url):
            _take_turns(engine, _turns_of(url))
        event.listen(engine, "begin", _begin_immediate)
        return engine
    engine = create_engine(url, pool_size=10, max_overflow=10, **kwargs)
    _ping_when_rested(engine)
    return engine


@cache
def engine_for(url: str) -> Engine:
    """One engine per database URL for the whole process."""
    return make_engine(url)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work is committed together, or rolled back together on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# --- Quick transactions: on the caller's own thread, when they need not wait --------------


class WouldWait(Exception):
    """A quick transaction would have waited for the write lock; nothing was done.

    Raised before the first statement ran (at BEGIN), or when SQLite said "busy" later:
    either way the transaction was rolled back, so the work can be run again elsewhere.
    ``turns_seen``: when it found a SQLite file's writers' turn taken by a writer of this
    process, how many turns had ended then (for :func:`wait_for_turn`); else None.
    """

    def __init__(self, *, turns_seen: int | None = None) -> None:
        super().__init__()
        self.turns_seen = turns_seen


QUICK_POOL = 2
"""Connections of a quick engine: its transactions run one at a time, on the loop's thread."""

CHECKPOINT_EVERY = 200
"""Quick commits between two WAL checkpoints, which run on a thread of their own."""

SQLITE_BUSY = 5  # the primary result code (extended codes keep it in their low byte)

_QUICK: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_MAIN_OF_QUICK: weakref.WeakKeyDictionary[Engine, weakref.ref[Engine]] = weakref.WeakKeyDictionary()
_QUICK_GUARD = threading.Lock()
CHECKPOINTS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ceping-checkpoint")


class _Checkpoints:
    """Counts a file's quick commits and asks for a PASSIVE checkpoint every so many.

    Why: SQLite's automatic checkpoint runs inside the commit that crosses 1,000 pages,
    copying the WAL into the database with an fsync, which on the event loop's thread
    would stall every handler. Quick connections turn it off; this does it on a thread.
    """

    def __init__(self, main: Engine) -> None:
        self._main = weakref.ref(main)
        self.commits = 0
        self.done = 0
        self._pending = False

    def count(self) -> None:
        self.commits += 1
        if self.commits % CHECKPOINT_EVERY == 0 and not self._pending:
            self._pending = True
            CHECKPOINTS.submit(self._run)

    def _run(self) -> None:
        try:
            main = self._main()
            if main is not None:
                checkpoint(main)
                self.done += 1
        finally:
            self._pending = False


_CHECKPOINTS: weakref.WeakKeyDictionary[Engine, _Checkpoints] = weakref.WeakKeyDictionary()


def checkpoint(engine: Engine) -> None:
    """Copy what the WAL holds into the SQLite file, without waiting for anyone (PASSIVE)."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
    finally:
        raw.close()


def _tune_quick(dbapi_connection: Any, _record: Any) -> None:
    """A quick connection never waits on SQLite's lock and leaves checkpoints to a thread."""
    dbapi_connection.execute("PRAGMA busy_timeout=0")
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def _has_quick(engine: Engine) -> bool:
    """A SQLite file (in memory, there is no lock to give up on) or PostgreSQL."""
    if engine.dialect.name == "sqlite":
        return _ENGINE_TURNS.get(engine) is not None
    return engine.dialect.name == "postgresql"


def _quick_engine(engine: Engine) -> Engine | None:
    """The quick engine beside a SQLite file's or PostgreSQL's engine (made on first use)."""
    if not _has_quick(engine):
        return None
    with _QUICK_GUARD:
        quick = _QUICK.get(engine)
        if quick is None:
            if engine.dialect.name == "sqlite":
                quick = _quick_sqlite(engine)
                _CHECKPOINTS[quick] = _Checkpoints(engine)
            else:
                quick = _quick_postgresql(engine)
            _MAIN_OF_QUICK[quick] = weakref.ref(engine)
            _QUICK[engine] = quick
            # Its connections go with the main engine's: a PostgreSQL database whose engine
            # was disposed must have no session of ours left (it may be dropped next).
            event.listen(engine, "engine_disposed", lambda _engine: quick.dispose())
        return quick


def _quick_sqlite(engine: Engine) -> Engine:
    """A SQLite file's engine whose writers never wait (``_begin_immediate``, ``_tune_quick``)."""
    quick = create_engine(
        engine.url,
        connect_args={"check_same_thread": False},
        pool_size=QUICK_POOL,
        max_overflow=QUICK_POOL,
        hide_parameters=True,
    )
    event.listen(quick, "connect", _tune_sqlite)
    event.listen(quick, "connect", _tune_quick)
    _take_turns(quick, _ENGINE_TURNS[engine])
    event.listen(quick, "begin", _begin_immediate)
    return quick


QUICK_LOCK_TIMEOUT_MS = 1
"""How long a quick PostgreSQL statement waits for a row lock before it gives up (WouldWait):
another transaction holds the person's assignment, so the tap waits on a worker thread."""

QUICK_STATEMENT_TIMEOUT_MS = 250
"""The longest a quick PostgreSQL statement may hold up the event loop (a statement takes a
fraction of a millisecond; a server that slow gets the tap on a worker thread instead)."""

QUICK_NETWORK_TIMEOUT_MS = 2000
"""A quick connection whose server stops answering is given up on after this (libpq's
``tcp_user_timeout``), rather than freezing the event loop until TCP itself gives up."""

_GIVE_UP_SQLSTATES = frozenset({"55P03", "57014"})  # lock_not_available, query_canceled


def _quick_postgresql(engine: Engine) -> Engine:
    """A PostgreSQL engine whose sessions give up instead of waiting (``_GIVE_UP_SQLSTATES``)."""
    timeouts = {
        "lock_timeout": QUICK_LOCK_TIMEOUT_MS,
        "statement_timeout": QUICK_STATEMENT_TIMEOUT_MS,
    }
    options = " ".join(f"-c {name}={ms}" for name, ms in timeouts.items())
    quick = create_engine(
        engine.url,
        connect_args={
            "options": options,
            "connect_timeout": max(1, QUICK_NETWORK_TIMEOUT_MS // 1000),
            "tcp_user_timeout": QUICK_NETWORK_TIMEOUT_MS,
        },
        pool_size=QUICK_POOL,
        max_overflow=QUICK_POOL,
        hide_parameters=True,
    )
    _ping_when_rested(quick)
    return quick


def with_quick(engine: Engine) -> list[Engine]:
    """The engine and, for a SQLite file or PostgreSQL, the quick engine beside it: where its
    statements go (for whoever counts them, as the tests and benches do)."""
    quick = _quick_engine(engine)
    return [engine] if quick is None else [engine, quick]


def main_engine(engine: Engine) -> Engine:
    """The engine a quick engine stands beside (any other engine is its own)."""
    main = _MAIN_OF_QUICK.get(engine)
    resolved = main() if main is not None else None
    return resolved if resolved is not None else engine


def is_quick(engine: Engine) -> bool:
    """Whether this engine's transactions run on the thread of the event loop."""
    return engine in _MAIN_OF_QUICK


def quick_checkpoints(engine: Engine) -> int:
    """How many checkpoints the quick commits on this engine's file asked for have run."""
    quick = _QUICK.get(engine)
    checkpoints = _CHECKPOINTS.get(quick) if quick is not None else None
    return checkpoints.done if checkpoints is not None else 0


def _is_busy(error: BaseException | None) -> bool:
    """SQLite said "busy", or PostgreSQL gave up waiting for a lock or on a slow statement."""
    if getattr(error, "sqlstate", None) in _GIVE_UP_SQLSTATES:
        return True
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == SQLITE_BUSY


def quick_transaction(
    engine: Engine, work: Callable[[Session], T], kept: KeptTurn | None = None
) -> T:
    """``work(session)`` in one transaction, now and on this thread, if it need not wait.

    For the event loop's own thread: a tap's transaction takes about a millisecond of CPU,
    and handing it to a worker thread cost more than that again in the GIL passed back and
    forth between the loop and the thread (issue 12). On a SQLite file, the quick
    transaction takes the writers' turn only if it is free and nobody is queued for it, and
    its connections do not wait on SQLite's lock (a writer of another process holds it). On
    PostgreSQL its connections wait at most ``QUICK_LOCK_TIMEOUT_MS`` for a row lock (another
    transaction holds the person's assignment) and ``QUICK_STATEMENT_TIMEOUT_MS`` for any
    statement, so the loop is never held up for long.

    Raises :class:`WouldWait`, with everything rolled back, where it would have waited, and
    for SQLite in memory; ``work`` must then be safe to run again (it only touched the
    database). A fold the transaction asks for runs on a thread (storage.ballots).
    ``kept``: the writers' turn kept for it (:func:`wait_for_turn`).
    """
    quick = _quick_engine(engine)
    if quick is None:
        raise WouldWait
    try:
        with kept or contextlib.nullcontext(), transaction(quick) as session:
            result = work(session)
    except exc.OperationalError as error:
        if _is_busy(error.orig):
            raise WouldWait from error
        raise
    checkpoints = _CHECKPOINTS.get(quick)
    if checkpoints is not None:
        checkpoints.count()
    return result


class KeptTurn:
    """A SQLite file's writers' turn, kept for one quick transaction (:func:`wait_for_turn`).

    Passed to :func:`quick_transaction`, which claims it at BEGIN; whatever happens, the
    turn is given back when that transaction is over, never left kept for nobody.
    """

    def __init__(self, turns: WriterTurns | None = None, waiter: _Waiter | None = None) -> None:
        self._turns, self._waiter = turns, waiter
        self._token: contextvars.Token[_Waiter | None] | None = None

    def __enter__(self) -> None:
        self._token = _KEPT.set(self._waiter)

    def __exit__(self, *_exc: object) -> None:
        if self._token is not None:
            _KEPT.reset(self._token)
        if self._turns is not None and self._waiter is not None:
            self._turns.give_back(self._waiter)  # nothing to give back once claimed


_KEPT: contextvars.ContextVar[_Waiter | None] = contextvars.ContextVar(
    "ceping_kept_turn", default=None
)


async def wait_for_turn(engine: Engine, would_wait: WouldWait, timeout: float) -> KeptTurn | None:
    """Queue, without holding the event loop, for the writers' turn a quick transaction found
    taken; the turn kept for it once its waiters before it are done.

    For a quick transaction that gave up because a writer of this process (a fold, a tap on
    a worker thread) held a SQLite file's turn: run again on the loop's thread with the kept
    turn, it takes a millisecond, where on a worker thread it took several (the GIL passed
    back and forth with the loop; at a meeting's end every tap behind a fold was sent there
    and they queued behind one another). A turn that ended meanwhile gives an empty
    KeptTurn: try again at once. None, at once, where nothing of this process holds the turn
    (PostgreSQL, another process's lock), and after ``timeout``.
    """
    quick = _quick_engine(engine)
    turns = _ENGINE_TURNS.get(quick) if quick is not None else None
    if would_wait.turns_seen is None or turns is None:
        return None
    loop = asyncio.get_running_loop()
    kept: asyncio.Future[None] = loop.create_future()
    queued: list[_Waiter] = []

    def resolve() -> None:
        if kept.done():  # given up meanwhile (timeout, cancelled): pass the turn on
            turns.give_back(queued[0])
        else:
            kept.set_result(None)

    def granted() -> None:  # on the thread that handed the turn on
        try:
            loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the loop is closed: nobody will claim it
            turns.give_back(queued[0])

    waiter = turns.queue_quick(would_wait.turns_seen, granted)
    if waiter is None:
        return KeptTurn()
    queued.append(waiter)
    try:
        await asyncio.wait_for(kept, timeout)
    except BaseException as error:  # timeout or cancelled: unqueue, or pass the turn on
        turns.give_back(waiter)
        if isinstance(error, TimeoutError):
            return None
        raise
    return KeptTurn(turns, waiter)


def alembic_config(engine: Engine) -> Config:
    """An Alembic configuration bound to this engine (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema; safe to run twice."""
    command.upgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
