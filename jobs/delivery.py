"""Delivering the outbox: claim due rows, send them within Telegram's limits, record the outcome.

* Rows are claimed with row locks (see ``storage.outbox.claim_due``), so two processes on
  one PostgreSQL never send the same row; each worker marks only the rows it holds.
* 429 ``RetryAfter``: the row waits ``retry_after`` and the whole outbox pauses as long,
  without counting an attempt (it is Telegram's pace, not a failure).
* Network errors: retried with exponential backoff until ``max_attempts``, then ``failed``.
* 403 ``Forbidden`` (blocked, deactivated) and 400 "chat not found": ``failed`` at once
  with the reason, and the account is marked unreachable (``blocked_at``, ``block_reason``)
  so organizers see it in the participation report.
* A row past ``expires_at`` is ``dropped``: a reminder after its deadline is worse than none.
* Quiet hours carried in the payload hold a row back until they end, even on a retry.

Delivery is at least once: if the process dies between Telegram's answer and ``mark_sent``,
the row is sent again after the lease. Everything else makes it exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, TypeVar

from telegram import Bot, InlineKeyboardMarkup
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from jobs.limiter import OutboxLimiter
from storage import outbox
from storage.db import Engine, Session, transaction
from storage.models import OutboxMessage
from storage.types import utcnow
from surveys.options import QuietHours, parse_quiet_hours

_LOGGER = logging.getLogger(__name__)
T = TypeVar("T")

UNREACHABLE_MARKERS = ("chat not found", "user not found", "peer_id_invalid")


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard to try: attempts, backoff, the lease of a claim and the batch size."""

    max_attempts: int = 5
    first_backoff: timedelta = timedelta(seconds=15)
    max_backoff: timedelta = timedelta(minutes=15)
    lease: timedelta = timedelta(minutes=5)
    batch_size: int = 100
    # Sends in flight at once. One keeps the strict order the tests of 429 and spacing
    # describe; the running jobs use a few (jobs/runner.py), so a send's round trip and its
    # commit no longer bound the rate: the limiter still spaces the sends.
    concurrency: int = 1

    def backoff(self, attempts: int) -> timedelta:
        """Wait after the n-th failed attempt: first_backoff doubled each time, capped."""
        return min(self.max_backoff, self.first_backoff * (2 ** max(0, attempts - 1)))


@dataclass
class DeliveryReport:
    """What one delivery pass did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    dropped: int = 0
    deferred: int = 0
    telegram_message_ids: list[int] = field(default_factory=list)

    @property
    def handled(self) -> int:
        """Rows this pass claimed or dropped."""
        return self.sent + self.retried + self.failed + self.dropped + self.deferred

    def add(self, other: DeliveryReport) -> None:
        """Add another pass's numbers to these."""
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.dropped += other.dropped
        self.deferred += other.deferred
        self.telegram_message_ids += other.telegram_message_ids


def default_worker_id() -> str:
    """host:pid, so a claim says which process holds it."""
    return f"{socket.gethostname()}:{os.getpid()}"[:80]


def retry_after_seconds(error: RetryAfter) -> float:
    """RetryAfter's wait in seconds (PTB gives an int or a timedelta)."""
    value: Any = error._retry_after  # the public property warns about its type change
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def is_unreachable(error: BadRequest) -> bool:
    """Whether a 400 means the chat itself is gone rather than a bad message."""
    text = str(error.message).lower()
    return any(marker in text for marker in UNREACHABLE_MARKERS)


class Deliverer:
    """Sends due outbox rows through one Bot, within the limits, for one worker id."""

    def __init__(
        self,
        engine: Engine,
        bot: Bot,
        *,
        zone: tzinfo,
        clock: Callable[[], datetime] = utcnow,
        worker: str | None = None,
        limiter: OutboxLimiter | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.bot = bot
        self.zone = zone
        self.clock = clock
        self.worker = worker or default_worker_id()
        self.limiter = limiter or OutboxLimiter()
        self.sleep = sleep
        self.policy = policy or DeliveryPolicy()
        self.paused_until: datetime | None = None

    async def _db(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in one transaction on a worker thread."""

        def run() -> T:
            with transaction(self.engine) as session:
                return work(session)

        return await asyncio.to_thread(run)

    def _paused(self, now: datetime) -> bool:
        return self.paused_until is not None and now < self.paused_until

    async def deliver_due(self) -> DeliveryReport:
        """One pass: drop expired rows, claim a batch of due ones and send them."""
        report = DeliveryReport()
        now = self.clock()
        if self._paused(now):
            return report
        report.dropped += await self._db(lambda s: outbox.drop_expired(s, now=now))
        rows = await self._db(
            lambda s: outbox.claim_due(
                s,
                worker=self.worker,
                now=now,
                limit=self.policy.batch_size,
                lease=self.policy.lease,
            )
        )
        if self.policy.concurrency <= 1:
            for row in rows:
                await self._deliver_or_defer(row, report)
            return report
        gate = asyncio.Semaphore(self.policy.concurrency)

        async def gated(row: OutboxMessage) -> None:
            async with gate:
                await self._deliver_or_defer(row, report)

        await asyncio.gather(*(gated(row) for row in rows))
        return report

    async def _deliver_or_defer(self, row: OutboxMessage, report: DeliveryReport) -> None:
        """Send one claimed row, or give it back while a 429 pause lasts."""
        if self._paused(self.clock()):
            await self._release(row, self.paused_until)  # type: ignore[arg-type]
            report.deferred += 1
            return
        await self._deliver_one(row, report)

    async def deliver_until_idle(self, max_passes: int = 1000) -> DeliveryReport:
        """Passes until one finds nothing due (rows waiting for later stay queued)."""
        total = DeliveryReport()
        for _ in range(max_passes):
            report = await self.deliver_due()
            total.add(report)
            if report.sent + report.retried + report.failed + report.dropped == 0:
                break
        return total

    async def _release(self, row: OutboxMessage, not_before: datetime) -> None:
        """Give a claimed row back to the queue unchanged, to go out at ``not_before``."""
        assert row.id is not None
        row_id = row.id
        await self._db(
            lambda s: outbox.release(
                s, message_id=row_id, worker=self.worker, not_before=not_before
            )
        )

    def _quiet_hours(self, row: OutboxMessage) -> QuietHours | None:
        raw = row.payload.get("quiet_hours")
        return parse_quiet_hours(raw) if raw else None

    async def _deliver_one(self, row: OutboxMessage, report: DeliveryReport) -> None:
        """Send one claimed row and record what happened."""
        assert row.id is not None
        row_id = row.id
        now = self.clock()
        if row.expires_at is not None and now >= row.expires_at:
            await self._db(
                lambda s: outbox.mark_dropped(
                    s, message_id=row_id, worker=self.worker, reason="expired"
                )
            )
            report.dropped += 1
            return
        quiet = self._quiet_hours(row)
        if quiet is not None and quiet.contains(now, self.zone):
            await self._release(row, quiet.next_allowed(now, self.zone))
            report.deferred += 1
            return
        wait = self.limiter.reserve(row.chat_id)
        if wait > 0:
            await self.sleep(wait)
        await self._send(row, report)

    async def _send(self, row: OutboxMessage, report: DeliveryReport) -> None:
        row_id = row.id
        assert row_id is not None
        markup = row.payload.get("reply_markup")
        try:
            message = await self.bot.send_message(
                chat_id=row.chat_id,
                text=row.payload["text"],
                reply_markup=InlineKeyboardMarkup.de_json(markup, self.bot) if markup else None,
            )
        except RetryAfter as error:
            await self._flood_wait(row_id, error)
            report.retried += 1
        except Forbidden as error:
            await self._fail(row, f"forbidden: {error.message}", unreachable=True)
            report.failed += 1
        except BadRequest as error:
            unreachable = is_unreachable(error)
            await self._fail(row, f"bad request: {error.message}", unreachable=unreachable)
            report.failed += 1
        except TelegramError as error:  # NetworkError, TimedOut and the rest: try again later
            if await self._retry_or_fail(row, f"{type(error).__name__}: {error.message}"):
                report.retried += 1
            else:
                report.failed += 1
        else:
            sent_at = self.clock()
            await self._db(
                lambda s: outbox.mark_sent(
                    s,
                    message_id=row_id,
                    worker=self.worker,
                    telegram_message_id=message.message_id,
                    now=sent_at,
                )
            )
            report.sent += 1
            report.telegram_message_ids.append(message.message_id)

    async def _flood_wait(self, row_id: int, error: RetryAfter) -> None:
        """Honour 429: this row and the whole outbox wait ``retry_after``."""
        until = self.clock() + timedelta(seconds=retry_after_seconds(error))
        self.paused_until = max(until, self.paused_until or until)
        _LOGGER.warning("outbox: flood control, pausing until %s", until.isoformat())
        await self._db(
            lambda s: outbox.mark_retry(
                s,
                message_id=row_id,
                worker=self.worker,
                not_before=until,
                error=f"retry after: {error.message}",
                count_attempt=False,
            )
        )

    async def _fail(self, row: OutboxMessage, reason: str, *, unreachable: bool) -> None:
        """A permanent failure: keep the reason; mark the account if the chat is unreachable."""
        row_id = row.id
        assert row_id is not None
        now = self.clock()
        _LOGGER.info("outbox: message %s failed for good: %s", row_id, reason)

        def record(session: Session) -> None:
            outbox.mark_failed(session, message_id=row_id, worker=self.worker, error=reason)
            if unreachable:
                outbox.record_unreachable(session, chat_id=row.chat_id, reason=reason, now=now)

        await self._db(record)

    async def _retry_or_fail(self, row: OutboxMessage, reason: str) -> bool:
        """Back off and retry a transient error; give up after max_attempts. True = retried."""
        row_id = row.id
        assert row_id is not None
        attempts = row.attempts + 1
        if attempts >= self.policy.max_attempts:
            await self._fail(row, f"gave up after {attempts} attempts: {reason}", unreachable=False)
            return False
        not_before = self.clock() + self.policy.backoff(attempts)
        await self._db(
            lambda s: outbox.mark_retry(
                s, message_id=row_id, worker=self.worker, not_before=not_before, error=reason
            )
        )
        return True
