"""A branch meeting in a box: N phones answer the satisfaction survey at once.

    .venv/bin/python -m bench.meeting [--phones 200] [--runs 5] [--database postgresql+psycopg://…]

The fake Telegram Bot API (tests.fakebot) runs in a child process together with the
simulated phones; this process runs only the real Application on a fresh database
(a temporary SQLite file, or a scratch database created on the given PostgreSQL server and
dropped afterwards). Every phone sends /surveys, then — the measured part — taps through
the whole survey: start, nine questions (the last one skipped), 提交, 确认提交.

The figure printed is this process's CPU time (``time.process_time``: every thread, the
database work included; the fake server and the phones are in the other process) divided
by the taps handled, next to the same figure for a no-op Application whose only handler
answers the callback and edits the message without touching the database — what PTB
itself costs per tap on this machine. The difference is the survey's own work per tap,
and their ratio is printed beside the goal (1.3x on SQLite, 1.5x on PostgreSQL). SQLite
runs inside this process, so its work is counted; a PostgreSQL server's is not (it is
another process), only the client's side of every round trip. A figure, not a test.

The latency run taps at ``--rate`` per second on an open-loop schedule (bench/latency.py),
``--latency-runs`` times (each on a new database; their p99s vary from run to run, so each
is printed and the median run shown in full); when that is above the rate the bot served
flat out, it is run again at 80% of the
flat-out rate, so the figures show both the overload and what a sustained rate costs. The
no-op Application is run on the same schedule beside each: PTB's own latency at that rate
on this machine, the floor under the bot's (on a slow machine 100 taps/s is over it). Before
each latency run ten more members answer the whole survey, unmeasured (``WARM_PHONES``): the
run's Application and engine are new, and a cold start saturated its first seconds.

The phones live beside the fake server rather than in a third process because a tap must
open its callback query id on the server (as Telegram does) before the bot may answer it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import random
import resource
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.latency import (
    Pauses,
    measure_latency,
    measure_noop_latency,
    median_run,
    paced,
    print_floor,
    print_latency,
    print_runs,
)

PHONES = 200
BRANCHES = 10
FIRST_USER = 50_001
WAIT_SECONDS = 120.0
SUSTAINED_SHARE = 0.8
"""When the asked tap rate is above the flat-out rate, latency is also measured at this
share of the flat-out rate (a rate the machine sustains, with room for bursts)."""
SCREEN_METHODS = frozenset({"sendMessage", "editMessageText"})

JSON = dict[str, Any]


# =============================================================================================
# The child process: fake Bot API server and the phones
# =============================================================================================


class Screens:
    """The newest message per chat, fed by one pass over the server's request log."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.seen = 0
        self.queues: dict[int, asyncio.Queue[JSON]] = {}
        self.stopped = False

    def queue(self, chat_id: int) -> asyncio.Queue[JSON]:
        """The screens of one chat, oldest first."""
        return self.queues.setdefault(chat_id, asyncio.Queue())

    def _drain(self) -> bool:
        """Hand every finished send or edit to its chat's queue; True once stopped."""
        log = self.api.log
        while self.seen < len(log):
            record = log[self.seen]
            if record.method in SCREEN_METHODS:
                if record.status == 200 and record.result is None:
                    break  # still being handled: look again on the next change
                if record.status == 200:
                    self.queue(record.result["chat"]["id"]).put_nowait(record.result)
            self.seen += 1
        return self.stopped

    async def watch(self) -> None:
        """Run until stopped (wait_until re-checks on every request the server finishes)."""
        await self.api.wait_until(self._drain, 10**6, lambda: "")

    async def next(self, chat_id: int) -> JSON:
        """The next message sent or edited in this chat."""
        return await asyncio.wait_for(self.queue(chat_id).get(), WAIT_SECONDS)


def buttons(message: JSON) -> list[str]:
    """Callback data of the message's inline buttons, in order."""
    markup = message.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


def pick(message: JSON, rng: random.Random) -> str | None:
    """What a member taps: start, any option, skip, submit, confirm; None at the end."""
    data = buttons(message)
    starts = [d for d in data if d.startswith("s:")]
    if starts:
        return starts[0]
    choices = [d for d in data if d.split(":")[4:5] == ["c"]]
    if choices:
        return rng.choice(choices)
    for action in ("k", "s", "y", "n"):  # skip, submit, confirm, and the no-op bot's next
        found = [d for d in data if d.split(":")[-1] == action or d.startswith(f"{action}:")]
        if found:
            return found[0]
    return None


def tap(api: Any, user_id: int, message: JSON, data: str) -> None:
    """Push a callback query as Telegram would, its id opened for one answer."""
    query_id = api.unique("q")
    api.open_callback_query(query_id)
    phone = api.user(user_id)
    query = {
        "id": query_id,
        "from": phone.user,
        "message": message,
        "chat_instance": str(user_id),
        "data": data,
    }
    api.push_update({"callback_query": query})


@dataclass
class Phone:
    """One member with a phone at the meeting."""

    user_id: int
    screen: JSON | None = None
    taps: int = 0


async def open_list(api: Any, screens: Screens, phone: Phone) -> None:
    """/surveys, waiting for the list (not measured)."""
    api.user(phone.user_id).send_nowait("/surveys")
    phone.screen = await screens.next(phone.user_id)


async def answer(api: Any, screens: Screens, phone: Phone, rng: random.Random, limit: int) -> None:
    """Tap through the survey until no button is left (or the limit, for the no-op bot)."""
    while phone.taps < limit:
        assert phone.screen is not None
        data = pick(phone.screen, rng)
        if data is None:
            return
        tap(api, phone.user_id, phone.screen, data)
        phone.taps += 1
        phone.screen = await screens.next(phone.user_id)


WARM_PHONES = 10
"""Members beyond the measured phones (one per branch) who answer the whole survey before a
latency run, unmeasured: each run builds a new Application and engine, and a bot that has
been running meets a meeting with its HTTP pool open and its statements compiled."""


async def warm_up(
    api: Any, screens: Screens, phones: int, first_user: int, rng: random.Random, command: str
) -> None:
    """The warm-up phones tap through their survey (as many taps as it takes, for the no-op)."""
    taps = command.split()[2:]
    limit = int(taps[0]) if taps else 10**6
    warm = [Phone(first_user + phones + n) for n in range(WARM_PHONES)]
    await asyncio.gather(*(open_list(api, screens, p) for p in warm))
    await asyncio.gather(*(answer(api, screens, p, rng, limit) for p in warm))


async def read_line() -> str:
    """One command from the parent on stdin."""
    return (await asyncio.to_thread(sys.stdin.readline)).strip()


async def serve(phones: int, first_user: int) -> None:
    """The child: serve the fake Bot API and play the phones on the parent's commands."""
    from tests.fakebot import FakeBotApi

    async with FakeBotApi() as api:
        print(api.base_url, api.base_file_url, api.token, sep="\n", flush=True)
        screens = Screens(api)
        watcher = asyncio.create_task(screens.watch())
        rng = random.Random(2026)
        while (command := await read_line()) not in ("", "quit"):
            limit = int(command.split()[1]) if command.startswith("noop") else 10**6
            people = [Phone(first_user + n) for n in range(phones)]
            await asyncio.gather(*(open_list(api, screens, p) for p in people))
            if command.startswith("paced"):
                await warm_up(api, screens, phones, first_user, rng, command)
            # The request log grows by every round's taps; without this, a full collection
            # walking it stopped the phones for 270 ms late in a latency run (printed as the
            # phones' pauses), which showed as the slowest taps although the bot had served
            # them in time.
            gc.collect()
            gc.freeze()
            print("ready", flush=True)
            await read_line()  # "go"
            if command.startswith("paced"):  # "paced RATE [TAPS PER PHONE]"
                rate, *taps = command.split()[1:]
                async with Pauses().watching() as pauses:
                    waits = await paced(
                        api, screens, people, rng, float(rate), *(int(n) for n in taps)
                    )
                print("latency", " ".join(w.encode() for w in waits), flush=True)
                print(pauses.line("phones'"), flush=True)
                continue
            await asyncio.gather(*(answer(api, screens, p, rng, limit) for p in people))
            print("done", sum(p.taps for p in people), flush=True)
        screens.stopped = True
        api._notify()  # wake the watcher so it sees the stop
        await watcher


# =============================================================================================
# The parent process: the bot
# =============================================================================================


@contextlib.contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """A fresh database URL: a temporary SQLite file, or a new database on a PG server."""
    if server_url and server_url.startswith("postgresql"):
        from tests.databases import fresh_postgres_database

        with fresh_postgres_database(server_url) as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{Path(folder) / 'meeting.db'}"


def seed(engine: Any, phones: int, branches: int, first_user: int) -> None:
    """A committee, branches with members spread over them, an open satisfaction round."""
    from storage.db import transaction
    from storage.models import Organization, Person, PersonRole, TelegramAccount
    from storage.rounds import create_round, open_round
    from storage.types import utcnow
    from surveys.categories import Phase

    now = utcnow()
    with transaction(engine) as session:
        committee = Organization(name="青山镇党委", category="committee")
        session.add(committee)
        session.flush()
        orgs = [
            Organization(
                name=f"第{n + 1}村党支部", category="village", parent_id=committee.id, members=50
            )
            for n in range(branches)
        ]
        session.add_all(orgs)
        session.flush()
        for n in range(phones):
            org = orgs[n % branches]
            person = Person(name=f"党员{n}", phone=f"139{n:08d}", org_id=org.id)  # type: ignore[arg-type]
            session.add(person)
            session.flush()
            session.add(PersonRole(person_id=person.id, org_id=org.id, role="member"))  # type: ignore[arg-type]
            user = first_user + n
            session.add(
                TelegramAccount(
                    person_id=person.id,  # type: ignore[arg-type]
                    telegram_user_id=user,
                    chat_id=user,
                    bound_via="invitation",
                )
            )
        round_ = create_round(
            session,
            name="会议测评",
            deadlines={Phase.SATISFACTION: now + timedelta(days=7)},
            now=now,
        )
        open_round(session, round_id=round_.id, now=now)  # type: ignore[arg-type]


def sample_screen() -> tuple[str, list[str]]:
    """The text and button labels of a real question screen, drawn once (no database)."""
    from bot.callbacks import Screen, Stage
    from bot.survey_views import DraftState, Survey, render
    from surveys.instruments import AnswerValue, get_instrument

    answers = {"q1": AnswerValue(choice="satisfied")}
    survey = Survey(1, get_instrument("satisfaction"), "第1村党支部", "zh_CN")
    view = render(survey, DraftState(answers, Screen(1, 1, Stage())))
    assert view.keyboard is not None
    labels = [button.text for row in view.keyboard.inline_keyboard for button in row]
    return view.text, labels


def noop_application(token: str, base_url: str, base_file_url: str) -> Any:
    """PTB alone: a tap answers the callback and edits the message into a same-size screen.

    The screen (text and buttons of a real question) is drawn once, so per tap only PTB
    and HTTP work remain; /surveys just sends the first screen.
    """
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
    from telegram.ext import ApplicationBuilder, CallbackQueryHandler, CommandHandler

    text, labels = sample_screen()

    def keyboard(step: int) -> InlineKeyboardMarkup:
        data = f"n:{step}"
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton(label, callback_data=data)] for label in labels]
        )

    async def listing(update: Update, context: Any) -> None:
        await context.bot.send_message(update.effective_chat.id, text, reply_markup=keyboard(1))  # type: ignore[union-attr]

    async def tapped(update: Update, context: Any) -> None:
        query = update.callback_query
        step = int(str(query.data).split(":")[1])  # type: ignore[union-attr]
        await asyncio.gather(
            query.answer(),  # type: ignore[union-attr]
            query.message.edit_text(f"{text}\n{step}", reply_markup=keyboard(step + 1)),  # type: ignore[union-attr]
        )

    from bot.app import API_POOL_WAIT, MAX_CONCURRENT_UPDATES
    from storage.settings import Settings

    app = (  # the bot's own HTTP settings: the same client, so only the handlers differ
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(base_file_url)
        .concurrent_updates(MAX_CONCURRENT_UPDATES)
        .connection_pool_size(Settings(_env_file=None).api_connections)  # type: ignore[call-arg]
        .pool_timeout(API_POOL_WAIT)
        .build()
    )
    app.add_handler(CommandHandler("surveys", listing))
    app.add_handler(CallbackQueryHandler(tapped))
    return app


@contextlib.asynccontextmanager
async def polling(app: Any) -> AsyncIterator[None]:
    """Run an Application's long polling (without post_init: no menus, no scheduled jobs)."""
    await app.initialize()
    await app.updater.start_polling(poll_interval=0, timeout=timedelta(seconds=5))
    await app.start()
    try:
        yield
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


@dataclass
class Measured:
    """CPU and wall time of one measured phase."""

    taps: int
    cpu: float
    wall: float
    switches: int = 0  # voluntary context switches of this process (threads waiting)
    system: float = 0.0  # of ``cpu``, the kernel's (switches, sockets, futexes)
    transactions: float | None = None  # CPU inside the answering transactions
    quick: float | None = None  # share of them run quick, on the event loop's thread
    held: float | None = None  # wall time of the quick ones (the loop waited on the database)
    statements: int | None = None  # SQL statements sent (a batch counts once), commits apart
    commits: int | None = None

    def line(self, label: str) -> str:
        """One line of the printed figures."""
        per_tap = 1000 * self.cpu / max(self.taps, 1)
        rate = self.taps / self.wall if self.wall else 0.0
        switches = self.switches / max(self.taps, 1)
        return (
            f"  {label:<26} {self.taps:>6} taps in {self.wall:6.1f} s ({rate:5.0f}/s), "
            f"CPU {self.cpu:6.2f} s = {per_tap:5.2f} ms per tap, "
            f"{switches:5.1f} context switches per tap, "
            f"{100 * self.system / max(self.cpu, 1e-9):3.0f}% of the CPU in the kernel"
        )


class Child:
    """The fake server and phones process, driven line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> str:
        """The child's next line of output."""
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), WAIT_SECONDS * 3)
        if not raw:
            raise RuntimeError("the fake server process ended early")
        return raw.decode().strip()

    async def say(self, text: str) -> None:
        """Send one command line to the child."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{text}\n".encode())
        await self.process.stdin.drain()

    async def close(self) -> None:
        """Wait for the child to end (it ends on "quit" or when stdin closes)."""
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            await asyncio.wait_for(self.process.wait(), 10)

    async def measure(
        self,
        command: str,
        counter: StatementCounter | None = None,
        clock: TransactionClock | None = None,
    ) -> Measured:
        """Let the phones open their lists, then time the taps (and count statements and the
        CPU inside transactions, of the taps only: the lists' reads come before)."""
        await self.say(command)
        if (ready := await self.line()) != "ready":
            raise RuntimeError(f"unexpected {ready!r}")
        before = counter.snapshot() if counter else (0, 0)
        inside, quick, total = (clock.spent, clock.quick, clock.total) if clock else (0, 0, 0)
        held = clock.held if clock else 0.0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu, wall = time.process_time(), time.perf_counter()
        await self.say("go")
        done = await self.line()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        used = resource.getrusage(resource.RUSAGE_SELF)
        switches = used.ru_nvcsw - usage.ru_nvcsw
        system = used.ru_stime - usage.ru_stime
        measured = Measured(int(done.split()[1]), cpu, wall, switches, system)
        if counter is not None:
            after = counter.snapshot()
            measured.statements, measured.commits = after[0] - before[0], after[1] - before[1]
        if clock is not None:
            measured.transactions = clock.spent - inside
            measured.quick = (clock.quick - quick) / max(clock.total - total, 1)
            measured.held = clock.held - held
        return measured


def taps_per_survey() -> int:
    """Start, every question (the last one skipped), 提交 and 确认提交."""
    from surveys.instruments import get_instrument

    return len(get_instrument("satisfaction").items) + 3


def pin(child: Child) -> None:
    """This process (the no-op, then the bot) on the first core, the phones on the second.

    Why: a bot's database threads and its event loop hand the GIL to one another on every
    poll httpx makes of its idle connections; on two cores each hand-over wakes a thread on
    the other core. Pinned, as one core per worker would be in production (systemd's
    ``CPUAffinity=``), the hand-overs stay on one core. The no-op is pinned alike.
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--pin needs two cores")
    os.sched_setaffinity(0, {cores[0]})
    os.sched_setaffinity(child.process.pid, {cores[1]})


async def start_child(phones: int) -> Child:
    """The fake Bot API with the phones, in its own process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.meeting",
        "--serve",
        "--phones",
        str(phones),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    return Child(process)


class StatementCounter:
    """Counts the statements and commits an engine sends: the round trips of a tap."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        from storage.db import with_quick

        self.statements = 0
        self.commits = 0
        self._lock = threading.Lock()
        for each in with_quick(engine):  # the taps' quick transactions go beside it
            event.listen(each, "before_cursor_execute", self._statement)
            event.listen(each, "commit", self._commit)

    def _statement(self, *_args: Any) -> None:
        with self._lock:
            self.statements += 1

    def _commit(self, *_args: Any) -> None:
        with self._lock:
            self.commits += 1

    def snapshot(self) -> tuple[int, int]:
        """Statements and commits so far."""
        with self._lock:
            return self.statements, self.commits


class TransactionClock:
    """Counts the CPU the answering handlers spend inside their database transactions.

    Wraps ``bot.answering.in_transaction`` (the real one: quick on the event loop's thread
    or on a worker thread, as the bot decides) and times, with ``time.thread_time`` on
    whichever thread runs it, the work from its start to the end of its commit. Also counts
    how many transactions ran quick.
    """

    def __init__(self) -> None:
        self.spent = 0.0
        self.held = 0.0  # wall time of the quick ones: the event loop could do nothing else
        self.quick = 0
        self.total = 0
        self._lock = threading.Lock()

    def _timed(self, work: Any) -> Any:
        from sqlalchemy import event

        def timed(session: Any) -> Any:
            start, began = time.thread_time(), time.perf_counter()
            quick = threading.current_thread() is threading.main_thread()

            def ended(*_args: Any) -> None:
                with self._lock:
                    self.spent += time.thread_time() - start
                    self.held += (time.perf_counter() - began) if quick else 0.0
                    self.total += 1
                    self.quick += quick

            event.listen(session, "after_commit", ended, once=True)
            return work(session)

        return timed

    async def in_transaction(self, context: Any, work: Any, **options: Any) -> Any:
        """bot.common.in_transaction, timed."""
        from bot.common import in_transaction

        return await in_transaction(context, self._timed(work), **options)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Time the answering module's transactions while inside."""
        from bot import answering

        original = answering.in_transaction
        answering.in_transaction = self.in_transaction  # type: ignore[assignment]
        try:
            yield
        finally:
            answering.in_transaction = original


async def measure_bot(
    args: argparse.Namespace, child: Child, api: tuple[str, str, str]
) -> Measured:
    """The real Application on a fresh, seeded database."""
    from bot.app import build_application
    from storage.db import make_engine, upgrade
    from storage.settings import Settings

    base_url, base_file_url, token = api
    with scratch_database(args.database) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            seed(engine, args.phones, args.branches, FIRST_USER)
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                bot_token=token,  # type: ignore[arg-type]
                bot_api_url=base_url,
                bot_file_url=base_file_url,
                database_url=url,
            )
            bot = build_application(
                settings, engine, base_url=base_url, base_file_url=base_file_url
            )
            clock = TransactionClock()
            counter = StatementCounter(engine)
            with clock.installed():
                async with polling(bot):
                    return await child.measure("real", counter, clock)
        finally:
            engine.dispose()


async def measure_noop(child: Child, api: tuple[str, str, str]) -> Measured:
    """The no-op Application, as many taps per phone as the survey takes."""
    base_url, base_file_url, token = api
    async with polling(noop_application(token, base_url, base_file_url)):
        return await child.measure(f"noop {taps_per_survey()}")


def _ratio(before: Measured, real: Measured, after: Measured) -> float:
    """The bot's CPU per tap over the mean of the no-op's on either side of it."""
    baseline = (before.cpu + after.cpu) / max(before.taps + after.taps, 1)
    return (real.cpu / max(real.taps, 1)) / baseline if baseline else 0.0


async def _rounds(
    args: argparse.Namespace, child: Child, api: tuple[str, str, str]
) -> list[tuple[Measured, Measured, Measured]]:
    """``--runs`` times: no-op bot, real bot, no-op bot again (other load shows as spread)."""
    rounds = []
    for _ in range(args.runs):
        before = await measure_noop(child, api)
        real = await measure_bot(args, child, api)
        after = await measure_noop(child, api)
        rounds.append((before, real, after))
    return rounds


async def run(args: argparse.Namespace) -> None:
    """The measured rounds, then the latency runs; print figures."""
    logging.basicConfig(level=logging.WARNING)
    from bot import app, collector  # noqa: F401  (what `ceping run` has imported by then)

    collector.settle()  # as `ceping run` does: for the no-op and the real bot alike
    child = await start_child(args.phones)
    if args.pin:
        pin(child)
    try:
        base_url, base_file_url, token = [await child.line() for _ in range(3)]
        api = (base_url, base_file_url, token)
        rounds = await _rounds(args, child, api)
        ratios = [_ratio(*triple) for triple in rounds]
        middle = sorted(range(len(ratios)), key=ratios.__getitem__)[len(ratios) // 2]
        before, real, after = rounds[middle]  # the median run's figures are printed
        latencies = [await measure_latency(args, child, api) for _ in range(args.latency_runs)]
        latency = median_run(latencies)
        floor = await measure_noop_latency(child, api, args.rate)
        sustained = sustained_floor = None
        flat_out = real.taps / real.wall if real.wall else 0.0
        if flat_out < args.rate:
            # The asked rate is above what this machine served flat out: the queue only
            # grows there, so also show the latency at a rate it sustains.
            sustained = await measure_latency(args, child, api, rate=SUSTAINED_SHARE * flat_out)
            sustained_floor = await measure_noop_latency(child, api, sustained.rate)
        await child.say("quit")
    finally:
        await child.close()
    backend = "postgresql" if (args.database or "").startswith("postgresql") else "sqlite"
    print(
        f"ceping meeting bench: {args.phones} phones, {taps_per_survey()} taps each, on {backend}"
        f" ({args.runs} runs; the median run shown)"
        + ("; this process and the phones pinned to a core each" if args.pin else "")
    )
    print(before.line("no-op handler (PTB only):"))
    print(real.line("bot (answering survey):"))
    print(after.line("no-op handler, again:"))
    baseline = (before.cpu + after.cpu) / max(before.taps + after.taps, 1)
    extra = 1000 * (real.cpu / max(real.taps, 1) - baseline)
    print(f"  survey's own work:          {extra:5.2f} ms CPU per tap (answer)")
    goal = 1.3 if backend == "sqlite" else 1.5
    print(
        f"  bot / no-op CPU per tap:    {ratios[middle]:5.2f}x median (goal <= {goal}x on"
        f" {backend}); per run: {' '.join(f'{r:.2f}' for r in ratios)}"
    )
    if real.transactions is not None:
        inside = 1000 * real.transactions / max(real.taps, 1)
        where = f"{real.quick or 0:.0%} of them on the event loop's thread"
        print(f"  of which in transactions:   {inside:5.2f} ms CPU per tap ({where})")
        if real.quick and real.held is not None:
            held = 1000 * real.held / max(real.taps, 1)
            print(f"  the loop held by them:      {held:5.2f} ms wall per tap (CPU, round trips)")
    if real.statements is not None and real.commits is not None:
        taps = max(real.taps, 1)
        print(
            f"  statements per tap:         {real.statements / taps:5.2f} "
            f"(+ {real.commits / taps:4.2f} commits; a batch counts once)"
        )
    print_latency(latency, county=not args.no_county)
    if len(latencies) > 1:
        print_runs(latencies)
    print_floor(floor)
    if sustained is not None:
        print(
            f"  flat out the bot served {real.taps / real.wall:.0f} taps/s "
            f"({1000 * real.cpu / real.wall:.0f} ms CPU per wall second of the bot process): "
            f"{args.rate:.0f}/s is above that, so also at {SUSTAINED_SHARE:.0%} of it:"
        )
        print_latency(sustained, county=not args.no_county, memory=False)
        if sustained_floor is not None:
            print_floor(sustained_floor)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.meeting", description=__doc__)
    parser.add_argument("--phones", type=int, default=PHONES, help="members answering at once")
    parser.add_argument("--branches", type=int, default=BRANCHES, help="branches they belong to")
    parser.add_argument(
        "--database",
        default=None,
        help="PostgreSQL server URL (a scratch database is made there); default: SQLite file",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="taps per second, latency run")
    parser.add_argument(
        "--runs", type=int, default=5, help="no-op, bot, no-op rounds (the median is printed)"
    )
    parser.add_argument(
        "--latency-runs",
        type=int,
        default=3,
        help="latency runs at --rate, each on a new database (the median p99's is printed)",
    )
    parser.add_argument(
        "--no-county", action="store_true", help="latency run without the county's data"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="this process on one core and the phones on another (see pin())",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point: the bench, or (with --serve) its fake-server child."""
    args = parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.phones, FIRST_USER))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
