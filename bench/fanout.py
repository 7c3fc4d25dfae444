"""Reminder fan-out for a county: plan 50,000 reminders, then deliver them.

    .venv/bin/python -m bench.fanout [--people 50000] [--database postgresql+psycopg://…]
                                     [--ceiling-messages 5000] [--seconds 120] [--quick]

Three figures, each beside its baseline:

1. **Planner.** ``jobs.planner.plan_manual`` (what ``/remind`` and ``ceping remind`` run)
   over a round where 50,000 reachable people each owe the satisfaction survey, then the
   enqueue into the outbox (one row per person, by dedup key).
2. **Delivery ceiling.** The real ``jobs.delivery.Deliverer`` (with the running jobs'
   policy: eight sends in flight) sends through the fake Bot API
   (``python -m tests.fakebot --open-chats`` in its own process) with the limit raised to
   2,000/s: messages per second and this process's CPU per message (the deliverer, and
   SQLite when it is the database; PostgreSQL's own CPU is its server's).
3. **Production limit.** The same deliverer at Telegram's 30/s for two minutes
   (``--quick``: 20 s) must deliver at least 95% of what the limit allows in that time.

Duplicates are counted on the fake server: sendMessage calls per chat; every chat must have
received at most one. A figure, not a test (tests/test_jobs_delivery.py checks correctness).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine, insert, select
from sqlmodel import Session

from storage.db import make_engine, upgrade
from storage.models import (
    Assignment,
    Organization,
    Person,
    Round,
    RoundInstrument,
    RoundPhase,
    TelegramAccount,
)

REPO = Path(__file__).resolve().parent.parent
TOKEN = "424242:FANOUT-bench-token"
PEOPLE = 50_000
BRANCHES = 1_000
FIRST_CHAT = 7_000_000_000
CEILING_RATE = 2_000.0
PRODUCTION_RATE = 30.0
TARGET_SHARE = 0.95
ZONE = ZoneInfo("Asia/Shanghai")
CHUNK = 5_000
SAMPLE = 2_000


def _bulk(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    table = model.__table__
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(table), rows[start : start + CHUNK])


def build_round(engine: Engine, people: int, *, now: datetime) -> int:
    """An open round whose satisfaction phase closes in two days; everyone owes it."""
    with Session(engine) as session:
        session.execute(
            insert(Round.__table__), [{"name": "全县提醒", "status": "open", "options": {}}]
        )  # type: ignore[attr-defined]
        round_id = int(session.execute(select(Round.__table__.c.id)).scalar_one())  # type: ignore[attr-defined]
        _bulk(
            session,
            RoundInstrument,
            [
                {
                    "round_id": round_id,
                    "instrument_id": "satisfaction",
                    "version": 1,
                    "phase": "satisfaction",
                }
            ],
        )
        _bulk(
            session,
            RoundPhase,
            [{"round_id": round_id, "phase": "satisfaction", "deadline": now + timedelta(days=2)}],
        )
        names = [f"第{n}村党支部" for n in range(BRANCHES)]
        _bulk(
            session,
            Organization,
            [
                {"name": name, "category": "village", "members": 50, "representatives": 15}
                for name in names
            ],
        )
        table = Organization.__table__  # type: ignore[attr-defined]
        org_ids = [row[0] for row in session.execute(select(table.c.id).order_by(table.c.id))]
        _bulk(
            session,
            Person,
            [
                {
                    "name": f"人员{n}",
                    "phone": f"139{n:08d}",
                    "org_id": org_ids[n % BRANCHES],
                    "anonymous": False,
                }
                for n in range(people)
            ],
        )
        person_table = Person.__table__  # type: ignore[attr-defined]
        person_ids = [
            (row[0], row[1])
            for row in session.execute(
                select(person_table.c.id, person_table.c.org_id).order_by(person_table.c.id)
            )
        ]
        _bulk(
            session,
            TelegramAccount,
            [
                {
                    "person_id": pid,
                    "telegram_user_id": FIRST_CHAT + n,
                    "chat_id": FIRST_CHAT + n,
                    "language": "zh_CN",
                    "bound_via": "invitation",
                    "bound_at": now,
                }
                for n, (pid, _) in enumerate(person_ids)
            ],
        )
        _bulk(
            session,
            Assignment,
            [
                {
                    "round_id": round_id,
                    "person_id": pid,
                    "org_id": org,
                    "instrument_id": "satisfaction",
                    "audience": "members",
                    "status": "pending",
                }
                for pid, org in person_ids
            ],
        )
        session.commit()
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    return round_id


@contextlib.contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """A temporary SQLite file, or a new database on the given PostgreSQL server."""
    if server_url and server_url.startswith("postgresql"):
        from tests.databases import fresh_postgres_database

        with fresh_postgres_database(server_url) as url:
            yield url
        return
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{Path(folder) / 'fanout.db'}"


@contextlib.contextmanager
def fake_server() -> Iterator[tuple[str, str]]:
    """python -m tests.fakebot --open-chats in its own process: (base_url, control root)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakebot", "--port", "0", "--token", TOKEN, "--open-chats"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        process.stdout.readline()
        process.stdout.readline()
        yield base_url, base_url.removesuffix("/bot")
    finally:
        process.terminate()
        process.wait(timeout=20)


def sent_per_chat(root: str, since: int) -> tuple[Counter[int], int]:
    """sendMessage calls per chat from log position since, and the log's size now."""
    with httpx.Client(timeout=120) as client:
        body = client.get(
            f"{root}/_fake/requests", params={"method": "sendMessage", "since": since}
        ).json()
        size = client.get(f"{root}/_fake/stats").json()["result"]["log_size"]
    chats = Counter(int(r["params"]["chat_id"]) for r in body["result"] if r["status"] == 200)
    return chats, int(size)


@dataclass
class Run:
    """One delivery run: how many sent in how long, with how much CPU, duplicates."""

    sent: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.sent if self.sent else 0.0


async def deliver(engine: Engine, base_url: str, *, rate: float, most: int, seconds: float) -> Run:
    """The real deliverer at this rate until most messages went out or seconds passed."""
    from telegram import Bot

    from jobs.delivery import Deliverer
    from jobs.limiter import OutboxLimiter
    from jobs.runner import RUNNING_POLICY

    async with Bot(TOKEN, base_url=base_url) as bot:
        deliverer = Deliverer(
            engine,
            bot,
            zone=ZONE,
            limiter=OutboxLimiter(per_second=rate),
            policy=RUNNING_POLICY,  # as ceping run and ceping jobs deliver
        )
        sent = 0
        start, cpu = time.perf_counter(), time.process_time()
        while sent < most and time.perf_counter() - start < seconds:
            report = await deliverer.deliver_due()
            if report.handled == 0:
                break
            sent += report.sent
        return Run(sent, time.perf_counter() - start, time.process_time() - cpu)


def plan(engine: Engine, now: datetime) -> tuple[int, float, float]:
    """Plan the reminder round and enqueue it: (messages, planner seconds, enqueue seconds)."""
    from jobs.planner import plan_manual
    from jobs.runner import enqueue_all
    from storage.db import transaction

    start = time.perf_counter()
    with transaction(engine) as session:
        messages = plan_manual(session, now=now, zone=ZONE, force=True)
    planned = time.perf_counter() - start
    start = time.perf_counter()
    added = enqueue_all(engine, messages, now=now)
    assert added == len(messages), (added, len(messages))
    return len(messages), planned, time.perf_counter() - start


def one_at_a_time(engine: Engine, now: datetime) -> float:
    """Seconds per message for the old path (outbox.enqueue per message), rolled back."""
    from storage import outbox
    from storage.outbox import NewMessage

    messages = [
        NewMessage(None, None, FIRST_CHAT + n, "baseline", "b", {"text": "x"}, now)
        for n in range(SAMPLE)
    ]
    with Session(engine) as session:
        start = time.perf_counter()
        for message in messages:
            outbox.enqueue(session, message=message, now=now)
        spent = time.perf_counter() - start
        session.rollback()
    return spent / SAMPLE


async def bench(args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    with scratch_database(args.database) as url, fake_server() as (base_url, root):
        engine = make_engine(url)
        upgrade(engine)
        build_round(engine, args.people, now=now)
        engine_name = engine.dialect.name
        single = one_at_a_time(engine, now)
        count, planned, enqueued = plan(engine, now)
        print(f"fan-out on {engine_name}, {args.people:,} people owing the satisfaction survey")
        print(
            f"  planner : {count:,} reminders planned in {planned * 1000:,.0f} ms "
            f"({planned / count * 1e6:.1f} µs each); enqueued in bulk in "
            f"{enqueued * 1000:,.0f} ms (baseline, one statement each: "
            f"{single * count:,.1f} s extrapolated from {SAMPLE:,})"
        )
        ceiling = await deliver(
            engine, base_url, rate=CEILING_RATE, most=args.ceiling_messages, seconds=120
        )
        chats, mark = sent_per_chat(root, 0)
        print(
            f"  ceiling : limit raised to {CEILING_RATE:,.0f}/s: {ceiling.sent:,} sent in "
            f"{ceiling.seconds:.1f} s = {ceiling.rate:,.0f} messages/s "
            f"({ceiling.rate / PRODUCTION_RATE:.1f}× Telegram's {PRODUCTION_RATE:.0f}/s), "
            f"{ceiling.cpu_ms:.2f} ms CPU per message in this process"
        )
        seconds = args.seconds if not args.quick else 20.0
        production = await deliver(
            engine, base_url, rate=PRODUCTION_RATE, most=10**9, seconds=seconds
        )
        later, _ = sent_per_chat(root, mark)
        allowed = PRODUCTION_RATE * production.seconds
        share = production.sent / allowed
        print(
            f"  limit   : {PRODUCTION_RATE:.0f}/s for {production.seconds:.0f} s: "
            f"{production.sent:,} sent = {share:.1%} of the {allowed:,.0f} the limit allows "
            f"(target ≥ {TARGET_SHARE:.0%}), {production.cpu_ms:.2f} ms CPU per message"
        )
        both = chats + later
        duplicates = sum(n - 1 for n in both.values() if n > 1)
        print(f"  duplicates: {duplicates} (sendMessage per chat on the fake server, both runs)")
        engine.dispose()
        if duplicates or share < TARGET_SHARE:
            raise SystemExit(1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fanout", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--people", type=int, default=PEOPLE)
    parser.add_argument(
        "--database", help="a PostgreSQL server URL; default: a temporary SQLite file"
    )
    parser.add_argument("--ceiling-messages", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--quick", action="store_true", help="a 20 s run at the production limit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    asyncio.run(bench(parse_args(argv)))


if __name__ == "__main__":
    main()
