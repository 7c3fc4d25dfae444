"""Every part in its own process, as in production: the fake Bot API and the `ceping` script.

Shared by the end-to-end stories (tests/test_e2e_processes.py) and the screen's process test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
ROSTER = REPO / "examples" / "roster.xlsx"
TOKEN = "987654:E2E-secret-Token-7Qx2mZ"
USERNAME = "ceping_e2e_bot"
WAIT = 30.0
"""Seconds the fake server holds a wait before giving up (generous for a slow CI)."""
STARTUP = 60.0

# Telegram user ids of the people from examples/roster.xlsx who take part.


# --- Processes ------------------------------------------------------------------------------


@dataclass
class FakeServer:
    """The fake Bot API in its own process, and an HTTP client for its control endpoints."""

    process: subprocess.Popen[str]
    base_url: str
    file_url: str
    client: httpx.Client

    @property
    def root(self) -> str:
        return self.base_url.removesuffix("/bot")

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call a /_fake endpoint; its result, or a failed assertion with the description."""
        response = self.client.request(method, f"{self.root}/_fake/{path}", **kwargs)
        body = response.json()
        assert body.get("ok"), f"/_fake/{path}: {response.status_code} {body.get('description')}"
        return body["result"]

    def log_size(self) -> int:
        """How many requests the bot has made so far."""
        return int(self.control("GET", "stats")["log_size"])

    def requests(self, method: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Logged Bot API calls (of one method) from position since."""
        params: dict[str, Any] = {"since": since}
        if method:
            params["method"] = method
        return list(self.control("GET", "requests", params=params))

    def wait_for(self, method: str, count: int, timeout: float = WAIT) -> None:
        """Hold until the bot has made count calls of method in total."""
        params = {"method": method, "count": count, "timeout": timeout}
        self.control("GET", "wait", params=params, timeout=timeout + 10)

    def download(self, file_id: str) -> bytes:
        """A file the bot uploaded, fetched the way a Telegram client would (getFile)."""
        found = self.client.post(f"{self.base_url}{TOKEN}/getFile", json={"file_id": file_id})
        path = found.json()["result"]["file_path"]
        return self.client.get(f"{self.file_url}{TOKEN}/{path}").content


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    """python -m tests.fakebot on a free port, stopped with SIGINT afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakebot", "--port", "0", "--token", TOKEN],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url, file_url, token = (process.stdout.readline().strip() for _ in range(3))
        assert token == TOKEN, "the fake server did not start"
        with httpx.Client(timeout=WAIT + 10) as client:
            yield FakeServer(process, base_url, file_url, client)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def ceping_env(database_url: str, server: FakeServer | None = None) -> dict[str, str]:
    """The environment of a ceping command: ours without CEPING_*, plus the settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CEPING_")}
    env.update(
        CEPING_DATABASE_URL=database_url,
        CEPING_BOT_USERNAME=USERNAME,
        CEPING_TIMEZONE="Asia/Shanghai",
        CEPING_LOCALE="zh_CN",
        PYTHONPATH=str(REPO),
    )
    if server is not None:
        env.update(
            CEPING_BOT_TOKEN=TOKEN,
            CEPING_BOT_API_URL=server.base_url,
            CEPING_BOT_FILE_URL=server.file_url,
        )
    return env


def ceping_command(*args: str) -> list[str]:
    """The console script's entry point, run by this interpreter."""
    return [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main())", *args]


def ceping(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run one ceping command to its end; it must succeed."""
    done = subprocess.run(
        ceping_command(*args), cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"ceping {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done


@dataclass
class RunningBot:
    """`ceping run` in its own process, its output captured in files."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def stop(self) -> int:
        """Ctrl-C, as an organizer stops it; the exit code (killed after 30 s: -9)."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -signal.SIGKILL


def start_bot(workdir: Path, env: dict[str, str], server: FakeServer) -> RunningBot:
    """Start `ceping run` and wait until it polls for updates."""
    out, err = workdir / "run.out", workdir / "run.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            ceping_command("run"), cwd=workdir, env=env, stdout=stdout, stderr=stderr
        )
    bot = RunningBot(process, out, err)
    try:
        server.wait_for("getUpdates", 1, timeout=STARTUP)
    except AssertionError:
        bot.process.kill()
        bot.process.wait()
        raise AssertionError(f"ceping run never polled; it printed:\n{bot.output()}") from None
    return bot


# --- Phones over HTTP ------------------------------------------------------------------------
