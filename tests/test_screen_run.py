"""`ceping run` with CEPING_PUBLIC_URL: the bot polls and the screen answers on its port."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from tests.screen_fixtures import PUBLIC_URL
from tests.support_processes import STARTUP, FakeServer, ceping, ceping_env, start_bot


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_ceping_run_serves_the_screen_beside_the_polling_bot(
    fake_server: FakeServer,
    database_url: str,
    tmp_path: Path,
) -> None:
    port = _free_port()
    env = ceping_env(database_url, fake_server)
    env.update(CEPING_PUBLIC_URL=PUBLIC_URL, CEPING_SCREEN_PORT=str(port))
    ceping(tmp_path, env, "init")
    bot = start_bot(tmp_path, env, fake_server)  # returns once the bot polls Telegram
    try:
        deadline, status = time.monotonic() + STARTUP, 0
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/screen/", timeout=5).status_code
            except httpx.TransportError:
                time.sleep(0.2)  # the server is still binding its port: poll, not an assertion
        assert status == 200, bot.output()
        refused = httpx.get(f"http://127.0.0.1:{port}/screen/api/data", params={"t": "1.1.1.x"})
        assert refused.status_code == 403
    finally:
        assert bot.stop() == 0, bot.output()
