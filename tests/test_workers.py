"""`ceping run --webhook-url URL --workers K`: K processes behind one webhook port.

A real `ceping run --workers 2` against the fake Bot API in its own process, which pushes
updates to the webhook as Telegram does (tests/fakebot/webhook.py). PostgreSQL only: the
workers share the database, and SQLite is refused (checked here on every engine).
"""

from __future__ import annotations

import socket
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storage import outbox
from storage.db import make_engine, transaction
from storage.outbox import NewMessage
from surveys.i18n import t
from tests.databases import fresh_postgres_database, postgres_server_url
from tests.support_processes import (
    STARTUP,
    WAIT,
    FakeServer,
    RunningBot,
    ceping,
    ceping_command,
    ceping_env,
)

pytestmark = pytest.mark.timeout(240)
PEOPLE = range(5001, 5041)
"""Forty people who each type /help once: more than enough connections to reach both."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_workers(workdir: Path, env: dict[str, str], port: int, workers: int) -> RunningBot:
    """`ceping run` with a webhook on 127.0.0.1:port and that many workers."""
    out, err = workdir / "run.out", workdir / "run.err"
    url = f"http://127.0.0.1:{port}/hook"
    args = ("run", "--webhook-url", url, "--listen", "127.0.0.1", "--port", str(port))
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            ceping_command(*args, "--workers", str(workers)),
            cwd=workdir,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    return RunningBot(process, out, err)


def refused(tmp_path: Path, database_url: str, *args: str) -> str:
    """Run `ceping run ARGS`, which must fail; what it printed."""
    env = ceping_env(database_url)
    env["CEPING_BOT_TOKEN"] = "123:never-used-token-x"
    done = subprocess.run(
        ceping_command("run", *args), cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0
    return done.stdout + done.stderr


def test_several_workers_are_refused_on_sqlite(tmp_path: Path) -> None:
    said = refused(
        tmp_path,
        f"sqlite:///{tmp_path / 'ceping.db'}",
        "--webhook-url",
        "http://x/h",
        "--workers",
        "2",
    )
    assert t("run.workers_sqlite", count=2) in said


def test_several_workers_are_refused_without_a_webhook(tmp_path: Path) -> None:
    said = refused(tmp_path, f"sqlite:///{tmp_path / 'ceping.db'}", "--workers", "3")
    assert t("run.workers_need_webhook", count=3) in said


def test_no_workers_at_all_is_refused(tmp_path: Path) -> None:
    said = refused(tmp_path, f"sqlite:///{tmp_path / 'ceping.db'}", "--workers", "0")
    assert t("run.workers_invalid", count=0, most=64) in said


def test_two_workers_answer_each_update_once_and_run_the_jobs_once(
    tmp_path: Path, fake_server: FakeServer
) -> None:
    server_url = postgres_server_url()
    if server_url is None:
        pytest.skip("several workers need PostgreSQL (set CEPING_TEST_DATABASE_URL)")
    with fresh_postgres_database(server_url) as database_url:
        env = ceping_env(database_url, fake_server)
        ceping(tmp_path, env, "init")
        bot = start_workers(tmp_path, env, free_port(), workers=2)
        try:
            fake_server.wait_for("setWebhook", 1, timeout=STARTUP)
            check_updates_spread_and_answered_once(fake_server)
            check_outbox_delivered_once(fake_server, database_url)
        finally:
            code = bot.stop()
        output = bot.output()
        assert code == 0, output
    assert len(fake_server.requests("setWebhook")) == 1
    assert len(fake_server.requests("setMyCommands")) == 2  # one menu per language, once
    # Our planner and deliverer are added in worker 0 alone (PTB's own JobQueue is per worker).
    assert output.count('Added job "JobRunner._plan_job') == 1, output
    assert output.count('Added job "JobRunner._deliver_job') == 1, output


def check_updates_spread_and_answered_once(server: FakeServer) -> None:
    """Forty /help at once: both workers take some, every person gets one answer."""
    since = server.log_size()
    messages = [{"user_id": user, "text": "/help", "first_name": f"U{user}"} for user in PEOPLE]
    update_ids = server.control("POST", "message", json=messages)
    for update_id in update_ids:
        server.control(
            "GET", "reply", params={"update_id": update_id, "timeout": WAIT}, timeout=WAIT + 10
        )
    webhook = server.control("GET", "webhook")
    delivered = Counter(update_id for update_id, _ in webhook["delivered"])
    assert sorted(delivered) == sorted(update_ids) and set(delivered.values()) == {1}
    assert set(webhook["per_worker"]) == {"0", "1"}, webhook["per_worker"]
    answers = Counter(r["params"]["chat_id"] for r in server.requests("sendMessage", since))
    assert answers == Counter({user: 1 for user in PEOPLE})


def check_outbox_delivered_once(server: FakeServer, database_url: str) -> None:
    """Messages queued in the outbox are sent by the one deliverer, each exactly once."""
    since = server.log_size()
    now = datetime.now(UTC)
    engine = make_engine(database_url)
    try:
        with transaction(engine) as session:
            for user in PEOPLE:
                message = NewMessage(
                    round_id=None,
                    person_id=None,
                    chat_id=user,
                    kind="test",
                    slot="workers",
                    payload={"text": "提醒"},
                    not_before=now,
                )
                outbox.enqueue(session, message=message, now=now)
    finally:
        engine.dispose()
    server.wait_for("sendMessage", since_count(server, since) + len(PEOPLE))
    sent = Counter(
        r["params"]["chat_id"]
        for r in server.requests("sendMessage", since)
        if r["params"].get("text") == "提醒"
    )
    assert sent == Counter({user: 1 for user in PEOPLE})


def since_count(server: FakeServer, since: int) -> int:
    """sendMessage calls made before position since."""
    return len(server.requests("sendMessage")) - len(server.requests("sendMessage", since))
