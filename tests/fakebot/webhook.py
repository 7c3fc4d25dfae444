"""Pushing updates to a webhook, as Telegram does once setWebhook names a URL.

While a webhook is set, every queued update is POSTed to its URL with the secret-token
header, up to ``max_connections`` at once (Telegram's default is 40). An update leaves the
queue when the bot answers 200; anything else (refused connection, 5xx) is retried after a
short pause, as Telegram retries. Each delivery is logged with the worker that took it
(the bot's ``X-Ceping-Worker`` response header), so tests see the load spread over workers.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from tests.fakebot.records import JSON

if TYPE_CHECKING:
    from tests.fakebot.server import FakeBotApi

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WORKER_HEADER = "X-Ceping-Worker"
RETRY_AFTER = 0.2
DEFAULT_CONNECTIONS = 40


@dataclass(frozen=True)
class Delivery:
    """One webhook POST that the bot answered 200: which update, taken by which worker."""

    update_id: int
    worker: str | None


class WebhookPusher:
    """The task that feeds queued updates to the webhook while one is set."""

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self.deliveries: list[Delivery] = []
        self.failures = 0
        self._in_flight: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Begin pushing (again) to the webhook now set on the api."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop pushing; updates not yet answered stay queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def per_worker(self) -> dict[str, int]:
        """How many updates each worker took."""
        counts: dict[str, int] = {}
        for delivery in self.deliveries:
            key = delivery.worker or "?"
            counts[key] = counts.get(key, 0) + 1
        return counts

    async def _run(self) -> None:
        connections = int(self.api.webhook.get("max_connections") or DEFAULT_CONNECTIONS)
        gate = asyncio.Semaphore(connections)
        limits = aiohttp.TCPConnector(limit=connections, force_close=False)
        pending: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(connector=limits) as session:
            try:
                while self.api.webhook.get("url"):
                    changed = self.api.changed_event()
                    for update in self._waiting():
                        await gate.acquire()
                        self._in_flight.add(update["update_id"])
                        task = asyncio.create_task(self._post(session, update, gate))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), RETRY_AFTER)
            finally:
                for task in pending:
                    task.cancel()

    def _waiting(self) -> list[JSON]:
        return [u for u in self.api.pending_updates if u["update_id"] not in self._in_flight]

    async def _post(
        self, session: aiohttp.ClientSession, update: JSON, gate: asyncio.Semaphore
    ) -> None:
        update_id = update["update_id"]
        headers = {}
        secret = self.api.webhook.get("secret_token")
        if secret:
            headers[SECRET_HEADER] = str(secret)
        try:
            async with session.post(
                str(self.api.webhook["url"]), json=update, headers=headers
            ) as response:
                worker = response.headers.get(WORKER_HEADER)
                ok = response.status == 200
        except (aiohttp.ClientError, OSError, KeyError):
            ok, worker = False, None
        try:
            if ok:
                self.deliveries.append(Delivery(update_id, worker))
                self.api.confirm_update(update_id)
            else:
                self.failures += 1
                await asyncio.sleep(RETRY_AFTER)  # Telegram retries later too
        finally:
            self._in_flight.discard(update_id)
            gate.release()
            self.api.notify()
