"""Issue 10, item 10: SIGTERM during long polling stops the bot with one line, no traceback."""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from telegram.error import TimedOut

from bot.cli.running import QuietStop

REPO = Path(__file__).resolve().parent.parent
TOKEN = "123456:STOP-TEST-token"
WAIT = 60.0


@pytest.fixture
def fake_api() -> Iterator[tuple[str, str]]:
    """python -m tests.fakebot on a free port: (Bot API base URL, file URL)."""
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
        yield base_url, file_url
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def _env(tmp_path: Path, base_url: str, file_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CEPING_")}
    env.update(
        CEPING_DATABASE_URL=f"sqlite:///{tmp_path / 'stop.db'}",
        CEPING_BOT_USERNAME="ceping_test_bot",
        CEPING_BOT_TOKEN=TOKEN,
        CEPING_BOT_API_URL=base_url,
        CEPING_BOT_FILE_URL=file_url,
        PYTHONPATH=str(REPO),
    )
    return env


def _ceping(*args: str) -> list[str]:
    return [sys.executable, "-c", "from bot.cli import main; raise SystemExit(main())", *args]


def test_sigterm_during_long_polling_logs_one_line_and_no_traceback(
    fake_api: tuple[str, str], tmp_path: Path
) -> None:
    base_url, file_url = fake_api
    env = _env(tmp_path, base_url, file_url)
    subprocess.run(_ceping("init"), cwd=tmp_path, env=env, check=True, capture_output=True)
    err = tmp_path / "run.err"
    with err.open("wb") as stderr:
        bot = subprocess.Popen(
            _ceping("run"), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    root = base_url.removesuffix("/bot")
    try:
        with httpx.Client(timeout=WAIT + 10) as client:
            # The first getUpdates is a long poll: the bot is inside it when the signal arrives.
            params = {"method": "getUpdates", "count": 1, "timeout": WAIT}
            waited = client.get(f"{root}/_fake/wait", params=params).json()
            assert waited.get("ok"), waited
        started = len(err.read_text().splitlines())
        bot.send_signal(signal.SIGTERM)
        code = bot.wait(timeout=30)
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait()
    lines = err.read_text().splitlines()
    # The jobs log each run every few seconds, stop or not: those lines are not the stop's.
    after = [line for line in lines[started:] if "apscheduler.executors" not in line]
    assert code == 0, lines
    assert not any("Traceback" in line or " ERROR " in line for line in lines), "\n".join(lines)
    assert len(after) == 1 and after[0].endswith("the bot stopped"), "\n".join(after)


def test_the_final_get_updates_error_leaves_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    # PTB logs this with the traceback when Telegram answers the last getUpdates with an error
    # (a Conflict or a timeout) after the signal; the fake Bot API does not, so emit it here.
    handler = logging.StreamHandler(io.StringIO())
    handler.addFilter(QuietStop())
    logger = logging.getLogger("telegram.ext.Updater")
    logger.addHandler(handler)
    try:
        try:
            raise TimedOut("Timed out")
        except TimedOut:
            logger.exception(
                "Error while calling `get_updates` one more time to mark all fetched updates. "
                "Suppressing error to ensure graceful shutdown."
            )
    finally:
        logger.removeHandler(handler)
    assert isinstance(handler.stream, io.StringIO)
    assert handler.stream.getvalue() == ""
