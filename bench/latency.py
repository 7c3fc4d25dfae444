"""bench.meeting's latency run: taps at a fixed rate, tap-to-screen time, the bot's memory.

The phones (in the fake server's process) tap on an open-loop schedule, 100 taps a second
by default, the next idle phone each time, until every survey is submitted; each tap's
latency runs from its scheduled time to the edited screen. The bot serves a database that
also holds bench.tally's county (1,000 branches, 50,000 respondents), and its resident
memory (now and peak, from /proc/self/status) is printed beside the 200 MB target.

Beside the slowest taps it prints both processes' pauses (garbage collections and gaps in
the event loop over 20 ms), so a burst of slow taps can be told apart: the bot stopped, or
the phones did.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

SLOWEST_SHOWN = 12
"""Slowest taps printed with their time in the run, so a burst (and where it fell) shows."""

STALL_SECONDS = 0.020
"""A gap in the bot's event loop longer than this is printed beside the slowest taps."""
TICK_SECONDS = 0.002

if TYPE_CHECKING:
    from bench.meeting import Child, Phone, Screens


@dataclass(frozen=True)
class Wait:
    """One tap of the latency run: when it was due, how long its screen took, which kind."""

    at: float  # seconds from the run's start to the tap's scheduled time
    seconds: float  # from the scheduled time to the edited screen
    kind: str

    def encode(self) -> str:
        """As the child prints it to the parent."""
        return f"{self.at:.4f}:{self.seconds:.6f}:{self.kind}"

    @classmethod
    def decode(cls, text: str) -> Wait:
        """What :meth:`encode` printed."""
        at, seconds, kind = text.split(":")
        return cls(float(at), float(seconds), kind)


TAP_KINDS = {"c": "choice", "k": "skip", "s": "submit", "y": "confirm"}
"""The kinds of survey tap, by callback action (bot.callbacks.Action); a start is "start"."""


def tap_kind(data: str) -> str:
    """start, choice, skip, submit (提交) or confirm (确认提交, the submission itself)."""
    if data.startswith("s:"):
        return "start"
    return TAP_KINDS.get(data.split(":")[4] if data.count(":") >= 4 else "", "other")


async def paced(
    api: Any,
    screens: Screens,
    people: list[Phone],
    rng: random.Random,
    rate: float,
    limit: int = 10**6,
) -> list[Wait]:
    """Taps on an open-loop schedule (rate per second, the next idle phone each time) until
    every survey is submitted (or each phone tapped ``limit`` times, for the no-op bot);
    each tap's seconds from its scheduled time to its new screen.

    Measured from the schedule, not from when a phone got round to it, so a slow bot shows
    as latency instead of silently lowering the rate.
    """
    from bench import meeting

    loop = asyncio.get_running_loop()
    idle = list(people)
    busy: set[asyncio.Task[None]] = set()
    waits: list[Wait] = []

    async def one(phone: Phone, data: str, scheduled: float) -> None:
        meeting.tap(api, phone.user_id, phone.screen or {}, data)
        phone.taps += 1
        phone.screen = await screens.next(phone.user_id)
        waits.append(Wait(scheduled - start, loop.time() - scheduled, tap_kind(data)))
        idle.append(phone)

    start, count = loop.time(), 0
    while idle or busy:
        scheduled = start + count / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        while not idle and busy:  # every phone is waiting for the bot: the tap is late
            await asyncio.wait(busy, return_when=asyncio.FIRST_COMPLETED)
        phone = idle.pop(0) if idle else None
        data = meeting.pick(phone.screen, rng) if phone is not None and phone.screen else None
        if phone is None or data is None or phone.taps >= limit:
            continue  # that phone has submitted: it leaves the schedule
        task = asyncio.create_task(one(phone, data, scheduled))
        busy.add(task)
        task.add_done_callback(busy.discard)
        count += 1
    return waits


def percentile(seconds: list[float], share: float) -> float:
    """The value below which ``share`` of them lie (0.0 for none)."""
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


class Pauses:
    """Where the bot process stopped serving during a latency run: its garbage collections
    and its event loop's stalls, in seconds from the run's start (to set beside the slowest
    taps: both processes read the same monotonic clock)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.collections: list[tuple[float, float, int]] = []  # (at, seconds, generation)
        self.stalls: list[tuple[float, float]] = []  # (at, seconds)
        self._began = 0.0

    def _collecting(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._began = now
        else:
            began = self._began - self.start
            self.collections.append((began, now - self._began, info["generation"]))

    async def _ticks(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK_SECONDS)
            late = time.monotonic() - before - TICK_SECONDS
            if late > STALL_SECONDS:
                self.stalls.append((before - self.start, late))

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[Pauses]:
        """Record collections and stalls while the block runs."""
        self.start = time.monotonic()
        gc.callbacks.append(self._collecting)
        ticks = asyncio.create_task(self._ticks())
        try:
            yield self
        finally:
            ticks.cancel()
            gc.callbacks.remove(self._collecting)

    def line(self, whose: str = "bot's") -> str:
        """The pauses, as printed."""
        full = [c for c in self.collections if c[2] == 2]
        longest = max(self.collections, key=lambda c: c[1], default=None)
        longest_text = (
            f"longest {longest[1] * 1000:.0f} ms (generation {longest[2]}) at {longest[0]:.1f} s"
            if longest
            else "none"
        )
        stalls = " ".join(
            f"{at:.1f}:{seconds * 1000:.0f}" for at, seconds in sorted(self.stalls)[:SLOWEST_SHOWN]
        )
        return (
            f"  {whose + ' pauses:':<27} {len(self.collections)} collections"
            f" ({len(full)} full), {longest_text}; loop stalls over"
            f" {STALL_SECONDS * 1000:.0f} ms (s: ms): {stalls or 'none'}"
        )


@dataclass
class Latency:
    """Tap-to-screen seconds at a fixed tap rate, and the bot process's memory."""

    waits: list[Wait]
    rate: float
    rss_mb: float
    peak_mb: float
    pauses: Pauses | None = None
    phones_pauses: str = ""  # the phones' process's, as it printed them

    def percentile(self, share: float, kind: str | None = None) -> float:
        """Of every tap, or of one kind's."""
        return percentile([w.seconds for w in self.waits if kind in (None, w.kind)], share)

    def kinds(self) -> list[str]:
        """The kinds of tap seen, in the order a survey meets them."""
        seen = {w.kind for w in self.waits}
        return [kind for kind in ("start", *TAP_KINDS.values(), "other") if kind in seen]

    def slowest(self, count: int) -> list[Wait]:
        """The slowest taps, in the order they were due (bursts show as neighbours)."""
        return sorted(sorted(self.waits, key=lambda w: -w.seconds)[:count], key=lambda w: w.at)


def memory_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak (VmRSS, VmHWM), in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def load_county(url: str) -> None:
    """bench.tally's county (1,000 branches, 50,000 respondents), its round then closed so
    the meeting's round can open: the bot serves a county-sized database. Built in a child
    process, so the memory the builder uses is not counted as the bot's."""
    code = f"from bench.latency import build_closed_county; build_closed_county({url!r})"
    subprocess.run([sys.executable, "-c", code], check=True)


def build_closed_county(url: str) -> None:
    """The child's work for :func:`load_county`."""
    from sqlalchemy import text

    from bench.tally import build_county
    from storage.db import make_engine

    engine = make_engine(url)
    build_county(engine, branches=1000, respondents=50_000)
    with engine.begin() as connection:
        connection.execute(text("UPDATE round SET status = 'closed'"))
    engine.dispose()


def reset_peak_memory() -> None:
    """Start VmHWM afresh (Linux: 5 to clear_refs), so the peak is the bot's serving."""
    gc.collect()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


async def measure_latency(
    args: argparse.Namespace, child: Child, api: tuple[str, str, str], rate: float | None = None
) -> Latency:
    """The real Application on a county-sized database, the phones tapping at ``rate`` per
    second (args.rate by default)."""
    rate = args.rate if rate is None else rate
    from bench import meeting
    from bot.app import build_application
    from storage.db import make_engine, upgrade
    from storage.settings import Settings

    base_url, base_file_url, token = api
    with meeting.scratch_database(args.database) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            if not args.no_county:
                await asyncio.to_thread(load_county, url)
            phones = args.phones + meeting.WARM_PHONES  # they warm the bot up first
            meeting.seed(engine, phones, args.branches, meeting.FIRST_USER)
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
            reset_peak_memory()
            async with meeting.polling(bot):
                waits, pauses, phones_pauses = await _paced_run(child, f"paced {rate}")
            return Latency(waits, rate, *memory_mb(), pauses, phones_pauses)
        finally:
            engine.dispose()


async def measure_noop_latency(child: Child, api: tuple[str, str, str], rate: float) -> Latency:
    """PTB alone (bench.meeting's no-op Application) on the same schedule, as many taps per
    phone as the survey takes: the floor this machine puts under the bot's latency."""
    from bench import meeting

    base_url, base_file_url, token = api
    async with meeting.polling(meeting.noop_application(token, base_url, base_file_url)):
        command = f"paced {rate} {meeting.taps_per_survey()}"
        waits, pauses, phones_pauses = await _paced_run(child, command)
    return Latency(waits, rate, *memory_mb(), pauses, phones_pauses)


async def _paced_run(child: Child, command: str) -> tuple[list[Wait], Pauses, str]:
    """One paced run of the phones against the Application now polling."""
    await child.say(command)
    if (ready := await child.line()) != "ready":
        raise RuntimeError(f"unexpected {ready!r}")
    async with Pauses().watching() as pauses:
        await child.say("go")
        line = await child.line()
        phones_pauses = await child.line()
    return [Wait.decode(w) for w in line.split()[1:]], pauses, phones_pauses


def median_run(latencies: list[Latency]) -> Latency:
    """The run whose p99 is the median of the runs' (the one printed in full)."""
    ranked = sorted(latencies, key=lambda latency: latency.percentile(0.99))
    return ranked[len(ranked) // 2]


def print_runs(latencies: list[Latency]) -> None:
    """Every latency run's p99 and its confirmations' p99, so the spread shows."""
    p99 = " ".join(f"{1000 * latency.percentile(0.99):.1f}" for latency in latencies)
    confirm = " ".join(f"{1000 * latency.percentile(0.99, 'confirm'):.0f}" for latency in latencies)
    print(f"  p99 ms per latency run:     {p99} (confirm: {confirm}); the median run shown above")
    slowest = "; ".join(
        " ".join(f"{w.at:.1f}:{w.seconds * 1000:.0f}:{w.kind}" for w in latency.slowest(3))
        for latency in latencies
    )
    print(f"  slowest 3 of each run:      {slowest}")


def print_floor(floor: Latency) -> None:
    """The no-op's latency on the same schedule, under the bot's."""
    print(
        f"  no-op at {floor.rate:.0f} taps/s:        "
        f"p50 {floor.percentile(0.5) * 1000:5.1f} ms, p99 {floor.percentile(0.99) * 1000:5.1f} ms"
        f" over {len(floor.waits)} taps (PTB alone, the same schedule: this machine's floor)"
    )


def print_latency(latency: Latency, *, county: bool, memory: bool = True) -> None:
    """p50/p99 beside the 100 ms target, and the memory beside its 200 MB target."""
    where = "a county-sized database (bench.tally's 1,000 branches)" if county else "the meeting"
    print(
        f"  latency at {latency.rate:.0f} taps/s:     "
        f"p50 {latency.percentile(0.5) * 1000:5.1f} ms, "
        f"p99 {latency.percentile(0.99) * 1000:5.1f} ms over {len(latency.waits)} taps "
        f"(tap to edited screen, open loop; target p99 < 100 ms)"
    )
    by_kind = ", ".join(
        f"{kind} {1000 * latency.percentile(0.5, kind):.0f}/"
        f"{1000 * latency.percentile(0.99, kind):.0f}"
        for kind in latency.kinds()
    )
    print(f"  p50/p99 ms by kind of tap:  {by_kind}")
    slow = latency.slowest(SLOWEST_SHOWN)
    print(
        f"  slowest {len(slow)} (s into the run: ms, kind): "
        + " ".join(f"{w.at:.1f}:{w.seconds * 1000:.0f}:{w.kind}" for w in slow)
    )
    if latency.pauses is not None:
        print(latency.pauses.line())
    if latency.phones_pauses:
        print(latency.phones_pauses)
    if not memory:
        return
    print(
        f"  bot process memory:         RSS {latency.rss_mb:5.0f} MB now, "
        f"peak {latency.peak_mb:5.0f} MB serving {where} (target < 200 MB)"
    )
