"""Scale-out: one and then two `ceping run --workers K` processes behind one webhook.

    .venv/bin/python -m bench.scale [--database postgresql+psycopg://postgres@127.0.0.1:5432/x]
                                    [--people 200] [--updates 2000] [--workers 1,2]

Every part in its own process, as in production: the fake Bot API (``python -m
tests.fakebot``) pushes updates to the webhook as Telegram does (up to 40 connections at
once), ``ceping run --webhook-url … --workers K`` answers them on a scratch PostgreSQL
database seeded like ``bench.meeting`` (registered members, an open satisfaction round).
Each update is a member's ``/surveys``: a transaction that reads the person, the round and
their assignments, then one sendMessage with the survey buttons.

For each K it prints the throughput (updates answered per second, all pushed at once), the
CPU per update summed over the K workers (user + system time from /proc, the parent and
PostgreSQL not included), and the updates lost or answered twice (both must be 0: every
update taken by the webhook once and every person answered exactly as often as they wrote).

On the 2-core development machine the fake server, the phones and PostgreSQL share the
cores with the workers, so the ratio of 2 workers to 1 is bounded by the machine, not the
design: the CPU per update says what K workers give where cores are free (see README,
"Speed").
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
TOKEN = "515151:SCALE-bench-token"
DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FIRST_USER = 60_001
WARM_UP = 200
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    """One K: updates answered, seconds, worker CPU seconds, lost and duplicated answers."""

    workers: int
    updates: int
    seconds: float
    cpu: float
    lost: int
    duplicated: int
    per_worker: dict[str, int]

    @property
    def rate(self) -> float:
        return self.updates / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.updates


class Fake:
    """The fake Bot API in its own process and a client for its control endpoints."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakebot", "--port", "0", "--token", TOKEN],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        self.file_url = self.process.stdout.readline().strip()
        self.process.stdout.readline()
        self.root = self.base_url.removesuffix("/bot")
        self.client = httpx.Client(timeout=600)

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        body = self.client.request(method, f"{self.root}/_fake/{path}", **kwargs).json()
        assert body.get("ok"), body
        return body["result"]

    def count(self, method: str) -> int:
        return int(self.control("GET", "stats")["requests"].get(method, 0))

    def wait_for(self, method: str, count: int, timeout: float = 300) -> None:
        params = {"method": method, "count": count, "timeout": timeout}
        self.control("GET", "wait", params=params, timeout=timeout + 10)

    def close(self) -> None:
        self.client.close()
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def descendants(pid: int) -> list[int]:
    """Every process below pid (the workers, and multiprocessing's helper)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        path = Path(f"/proc/{parent}/task/{parent}/children")
        children = [int(c) for c in path.read_text().split()] if path.exists() else []
        found += children
        todo += children
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes, in seconds."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def environment(database_url: str, fake: Fake) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEPING_")}
    env.update(
        CEPING_DATABASE_URL=database_url,
        CEPING_BOT_TOKEN=TOKEN,
        CEPING_BOT_API_URL=fake.base_url,
        CEPING_BOT_FILE_URL=fake.file_url,
        CEPING_BOT_USERNAME="ceping_scale_bot",
        PYTHONPATH=str(REPO),
    )
    return env


def ceping(*args: str) -> list[str]:
    return [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main())", *args]


def push(fake: Fake, people: int, count: int, first: int) -> tuple[list[int], Counter[int]]:
    """count /surveys from the people in turn: the update ids and how many each person sent."""
    users = [FIRST_USER + (first + n) % people for n in range(count)]
    messages = [{"user_id": u, "text": "/surveys", "first_name": f"P{u}"} for u in users]
    ids: list[int] = []
    for start in range(0, len(messages), 500):
        ids += fake.control("POST", "message", json=messages[start : start + 500])
    return ids, Counter(users)


def measure(fake: Fake, env: dict[str, str], workdir: Path, workers: int, args: Any) -> Result:
    """Start K workers, warm up, push the updates, wait for every answer, stop."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    hooks = fake.count("setWebhook")
    log = (workdir / f"run-{workers}.log").open("wb")
    options = ("--webhook-url", url, "--listen", "127.0.0.1", "--port", str(port))
    process = subprocess.Popen(
        ceping("run", *options, "--workers", str(workers)),
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        fake.wait_for("setWebhook", hooks + 1, timeout=120)
        sent = fake.count("sendMessage")
        push(fake, args.people, WARM_UP, 0)
        fake.wait_for("sendMessage", sent + WARM_UP)
        pids = [process.pid, *descendants(process.pid)]
        before_cpu, since = cpu_seconds(pids), fake.control("GET", "stats")["log_size"]
        delivered_before = len(fake.control("GET", "webhook")["delivered"])
        start = time.perf_counter()
        ids, expected = push(fake, args.people, args.updates, WARM_UP)
        fake.wait_for("sendMessage", sent + WARM_UP + args.updates)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds(pids) - before_cpu
        return check(fake, workers, ids, expected, since, delivered_before, seconds, cpu)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        log.close()


def check(
    fake: Fake,
    workers: int,
    ids: list[int],
    expected: Counter[int],
    since: int,
    delivered_before: int,
    seconds: float,
    cpu: float,
) -> Result:
    """Lost and duplicated: per update on the webhook, per person in the answers."""
    time.sleep(1.0)  # a duplicate answer would come after the last expected one
    webhook = fake.control("GET", "webhook")
    wanted = set(ids)
    taken = Counter(u for u, _ in webhook["delivered"][delivered_before:] if u in wanted)
    sends = fake.control("GET", "requests", params={"method": "sendMessage", "since": since})
    answered = Counter(int(r["params"]["chat_id"]) for r in sends if r["status"] == 200)
    lost = sum(1 for u in ids if taken[u] == 0)
    lost += sum(max(0, n - answered[chat]) for chat, n in expected.items())
    duplicated = sum(n - 1 for n in taken.values() if n > 1)
    duplicated += sum(max(0, answered[chat] - n) for chat, n in expected.items())
    per_worker = Counter(w for u, w in webhook["delivered"][delivered_before:])
    return Result(workers, len(ids), seconds, cpu, lost, duplicated, dict(per_worker))


def seed(database_url: str, env: dict[str, str], workdir: Path, people: int) -> None:
    """ceping init, then bench.meeting's members and open round."""
    subprocess.run(ceping("init"), cwd=workdir, env=env, check=True, capture_output=True)
    from bench.meeting import seed as seed_meeting
    from storage.db import make_engine

    engine = make_engine(database_url)
    seed_meeting(engine, people, 10, FIRST_USER)
    engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--database", default=DEFAULT_SERVER, help="a PostgreSQL server URL")
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--workers", default="1,2", help="the worker counts to run, in order")
    args = parser.parse_args(argv)
    from tests.databases import fresh_postgres_database

    fake = Fake()
    results: list[Result] = []
    try:
        with (
            fresh_postgres_database(args.database) as url,
            tempfile.TemporaryDirectory() as folder,
        ):
            env = environment(url, fake)
            seed(url, env, Path(folder), args.people)
            for workers in (int(k) for k in args.workers.split(",")):
                results.append(measure(fake, env, Path(folder), workers, args))
    finally:
        fake.close()
    report(results, args)


def report(results: list[Result], args: Any) -> None:
    cores = os.cpu_count()
    print(f"scale-out on PostgreSQL, {cores} cores shared with PostgreSQL and the fake server:")
    print(
        f"  {args.updates:,} × /surveys from {args.people} members, pushed to the webhook at once"
    )
    base = results[0]
    for r in results:
        print(
            f"  {r.workers} worker(s): {r.rate:,.0f} updates/s ({r.rate / base.rate:.2f}× "
            f"{base.workers} worker), {r.cpu_ms:.2f} ms CPU per update summed over workers, "
            f"lost {r.lost}, duplicated {r.duplicated}, per worker {r.per_worker}"
        )
    if any(r.lost or r.duplicated for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
