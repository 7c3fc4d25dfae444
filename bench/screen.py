"""The meeting screen's cost at county scale (figures, not a test).

Builds the county of ``bench.tally`` (1,000 branches, 50,000 respondents), serves the screen
from this process as ``ceping run`` does (uvicorn + Starlette on 127.0.0.1), then prints:

1. the data endpoint's latency for one branch, read from the database on every request
   (the cache off), over HTTP — goal: under 20 ms;
2. this process's CPU while 200 viewers watch one branch for 20 s, through the live feed
   (server-sent events) and then by polling the data endpoint once a second, while a
   helper process submits one ballot a second so the numbers keep moving — goal: under
   10% of one core.

The viewers and the ballots run in a child process, so their own CPU is not counted.

    .venv/bin/python -m bench.screen                      # a temporary SQLite file
    .venv/bin/python -m bench.screen --database postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Engine, func, select, update
from sqlmodel import Session

from bench.tally import build_county
from bot.screen.auth import Grant, sign_grant
from bot.screen.server import bound_port, screen_server
from bot.screen.web import ScreenService
from storage.db import make_engine, upgrade
from storage.models import Assignment, Organization

TOKEN = "123456:BENCH-token"
LATENCY_GOAL_MS = 20.0
CPU_GOAL = 0.10


def _busiest_branch(engine: Engine, round_id: int) -> int:
    with Session(engine) as session:
        return int(
            session.execute(
                select(Assignment.org_id)
                .where(Assignment.round_id == round_id)
                .group_by(Assignment.org_id)
                .order_by(func.count().desc())
                .limit(1)
            ).scalar_one()
        )


def _service(engine: Engine, refresh: float | None = None) -> ScreenService:
    service = ScreenService(
        engine=engine,
        bot_token=TOKEN,
        clock=lambda: datetime.now(UTC),
        zone=ZoneInfo("Asia/Shanghai"),
        bot_username=lambda: "ceping_bench_bot",
    )
    if refresh is not None:
        service.refresh = refresh
    return service


async def _latency(engine: Engine, url: str, requests: int) -> list[float]:
    """Milliseconds per GET of the data endpoint, the cache off."""
    times = []
    async with screen_server(_service(engine, refresh=0), "127.0.0.1", 0) as server:
        full = f"http://127.0.0.1:{bound_port(server)}{url}"
        async with httpx.AsyncClient() as client:
            for _ in range(requests + 5):
                start = time.perf_counter()
                response = await client.get(full)
                times.append((time.perf_counter() - start) * 1000)
                response.raise_for_status()
    return times[5:]  # the first requests warm the pool and the caches of SQLAlchemy


# --- The viewers (a child process) ------------------------------------------------------------


def _viewers(url: str, viewers: int, seconds: float, mode: str, database: str, org: int) -> None:
    asyncio.run(_watch(url, viewers, seconds, mode, database, org))


async def _watch(
    url: str, viewers: int, seconds: float, mode: str, database: str, org: int
) -> None:
    deadline = time.monotonic() + seconds
    received, failed = [0], [0]
    limits = httpx.Limits(max_connections=viewers + 10, max_keepalive_connections=viewers + 10)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def stream() -> None:
            query = url.replace("/api/data", "/api/stream")
            async with client.stream("GET", query) as response:
                async for line in response.aiter_lines():
                    received[0] += line.startswith("data:")
                    if time.monotonic() > deadline:
                        return

        async def poll() -> None:
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    (await client.get(url)).raise_for_status()
                    received[0] += 1
                except httpx.TransportError:  # a kept-alive connection closed as we reused it
                    failed[0] += 1
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

        work = stream if mode == "sse" else poll
        tasks = [asyncio.create_task(work()) for _ in range(viewers)]
        await asyncio.gather(_ballots(database, org, deadline), *tasks)
    print(
        f"  {mode}: {viewers} viewers received {received[0]} updates in {seconds:.0f} s"
        f" ({failed[0]} requests failed)"
    )


async def _ballots(database: str, org: int, deadline: float) -> None:
    """One of the branch's members answers, or not, every second: news every second."""
    engine = make_engine(database)
    with Session(engine) as session:
        assignment_id = session.execute(
            select(Assignment.id).where(Assignment.org_id == org).limit(1)
        ).scalar_one()
    flip = 0
    while time.monotonic() < deadline:
        flip += 1
        with Session(engine) as session:
            session.execute(
                update(Assignment)
                .where(Assignment.id == assignment_id)
                .values(status="submitted" if flip % 2 else "pending")
            )
            session.commit()
        await asyncio.sleep(1.0)
    engine.dispose()


async def _cpu(
    engine: Engine, database: str, url: str, org: int, viewers: int, seconds: float, mode: str
) -> float:
    """Share of one core this process used while the viewers watched."""
    async with screen_server(_service(engine), "127.0.0.1", 0) as server:
        full = f"http://127.0.0.1:{bound_port(server)}{url}"
        child = multiprocessing.get_context("spawn").Process(
            target=_viewers, args=(full, viewers, seconds, mode, database, org)
        )
        child.start()
        await asyncio.sleep(2.0)  # let the viewers connect before measuring
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds - 4.0)
        used = (time.process_time() - cpu) / (time.perf_counter() - wall)
        while child.is_alive():
            await asyncio.sleep(0.2)
    return used


def main(argv: Sequence[str] | None = None) -> None:
    """Build the county, serve the screen, print the latency and the CPU."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", help="an empty database URL (default: a temporary SQLite)")
    parser.add_argument("--branches", type=int, default=1_000)
    parser.add_argument("--respondents", type=int, default=50_000)
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        url = args.database or f"sqlite:///{Path(folder) / 'county.db'}"
        engine = make_engine(url)
        upgrade(engine)
        round_id = build_county(engine, branches=args.branches, respondents=args.respondents)
        org = _busiest_branch(engine, round_id)
        with Session(engine) as session:
            name = session.get(Organization, org).name  # type: ignore[union-attr]
        grant = Grant(org, round_id, datetime.now(UTC) + timedelta(hours=3))
        path = f"/screen/api/data?t={sign_grant(grant, TOKEN)}"
        print(f"{engine.dialect.name}: {args.branches} branches, {args.respondents} respondents")
        times = asyncio.run(_latency(engine, path, 200))
        body = json.loads(_service(engine).build(round_id, org, "zh_CN"))
        print(f"branch {name}: {json.dumps(body['coverage'], ensure_ascii=False)[:120]}…")
        p95 = sorted(times)[int(len(times) * 0.95)]
        print(
            f"data endpoint, database read every time: median {statistics.median(times):.1f} ms,"
            f" p95 {p95:.1f} ms (goal < {LATENCY_GOAL_MS:.0f} ms)"
        )
        for mode in ("sse", "poll"):
            share = asyncio.run(_cpu(engine, url, path, org, args.viewers, args.seconds, mode))
            print(
                f"{args.viewers} viewers, {mode}: this process used {share:.1%} of a core"
                f" (goal < {CPU_GOAL:.0%})"
            )
        engine.dispose()


if __name__ == "__main__":
    main()
