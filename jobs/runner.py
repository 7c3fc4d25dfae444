"""Scheduled jobs inside ``ceping run`` or alone as ``ceping jobs``.

Two APScheduler jobs, neither holding any state that matters:

* every minute the planner turns what is due (``jobs.planner.plan_due``) into outbox rows,
  each once thanks to its dedup key;
* every few seconds the deliverer sends due outbox rows (``jobs.delivery``).

The schedule follows from the rounds and deadlines in the database, so a restart, a second
process or a missed tick changes nothing: what was missed is sent once, what expired is
dropped. The clock is injectable so tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram import Bot
from telegram.ext import Application

from jobs.delivery import Deliverer, DeliveryPolicy, DeliveryReport
from jobs.limiter import OutboxLimiter
from jobs.planner import KIND_REMINDER, KIND_SECRETARY_REMINDER, plan_due, plan_manual
from storage import outbox, reminders
from storage.ballots import fold_due
from storage.db import Engine, engine_for, transaction
from storage.grading import enqueue_rectification_reminders
from storage.outbox import NewMessage
from storage.runtime import SERVICES_KEY, Services
from storage.settings import Settings
from storage.types import utcnow

_LOGGER = logging.getLogger(__name__)

JOBS_KEY = "ceping.jobs"
PLAN_EVERY = timedelta(minutes=1)
DELIVER_EVERY = timedelta(seconds=5)
RUNNING_POLICY = DeliveryPolicy(concurrency=8)
"""Eight sends in flight: a round trip of up to a quarter second still allows 30/s."""


def enqueue_all(engine: Engine, messages: list[NewMessage], *, now: datetime) -> int:
    """Insert the messages (each once, by dedup key); how many were new."""
    with transaction(engine) as session:
        return outbox.enqueue_many(session, messages=messages, now=now)


def enqueue_due(engine: Engine, *, now: datetime, zone: tzinfo) -> int:
    """Plan what is due now (reminders, digests, ledger deadlines) and enqueue it; how many new."""
    with transaction(engine) as session:
        messages = plan_due(session, now=now, zone=zone)
    added = enqueue_all(engine, messages, now=now)
    with transaction(engine) as session:
        # Ledger items due within three days; the outbox key makes each reminder happen once.
        today = now.astimezone(zone).date()
        added += enqueue_rectification_reminders(session, today=today, now=now)
    return added


@dataclass(frozen=True)
class Enqueued:
    """What a manual reminder round put in the outbox, and when the first goes out."""

    count: int
    first_send_at: datetime | None
    # Who is reminded, by the organization the roster lists them in (issue 14), and the
    # secretaries who also get their branch's progress; names only.
    people: dict[str, list[str]] = field(default_factory=dict)
    secretaries: list[str] = field(default_factory=list)


def enqueue_manual(engine: Engine, *, now: datetime, zone: tzinfo, force: bool = False) -> Enqueued:
    """Plan a reminder round now (quiet hours respected unless forced) and enqueue it."""
    with transaction(engine) as session:
        messages = plan_manual(session, now=now, zone=zone, force=force)
        people = _person_ids(messages, KIND_REMINDER)
        secretaries = _person_ids(messages, KIND_SECRETARY_REMINDER)
        by_home = reminders.people_by_home(session=session, person_ids=people | secretaries)
        named = reminders.people_by_home(session=session, person_ids=secretaries)
    count = enqueue_all(engine, messages, now=now)
    if not count:
        return Enqueued(0, None)
    first = min((m.not_before for m in messages), default=None)
    return Enqueued(count, first, by_home, sorted(n for names in named.values() for n in names))


def _person_ids(messages: list[NewMessage], kind: str) -> set[int]:
    return {m.person_id for m in messages if m.kind == kind and m.person_id is not None}


class JobRunner:
    """The planner and the deliverer of one process, on one engine and one Bot."""

    def __init__(
        self,
        engine: Engine,
        bot: Bot,
        zone: tzinfo,
        *,
        clock: Callable[[], datetime] = utcnow,
        worker: str | None = None,
        limiter: OutboxLimiter | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.zone = zone
        self.clock = clock
        self.deliverer = Deliverer(
            engine,
            bot,
            zone=zone,
            clock=clock,
            worker=worker,
            limiter=limiter,
            sleep=sleep,
            policy=policy or RUNNING_POLICY,
        )

    async def plan(self) -> int:
        """Enqueue everything due now; how many new outbox rows."""
        now = self.clock()
        await asyncio.to_thread(fold_due, self.engine, now=now)  # ballots of ended phases count
        return await asyncio.to_thread(enqueue_due, self.engine, now=now, zone=self.zone)

    async def deliver(self) -> DeliveryReport:
        """Send what is due in the outbox until nothing more is."""
        return await self.deliverer.deliver_until_idle()

    async def tick(self) -> DeliveryReport:
        """Plan, then deliver: what one minute of the scheduler does."""
        await self.plan()
        return await self.deliver()

    async def remind_now(self, *, force: bool = False) -> Enqueued:
        """A reminder round now (/remind): how many messages, and when they go out."""
        now = self.clock()
        return await asyncio.to_thread(
            enqueue_manual, self.engine, now=now, zone=self.zone, force=force
        )

    async def _safe(self, job: Callable[[], Awaitable[Any]]) -> None:
        """Run a job; an error is logged and the next run tries again."""
        try:
            await job()
        except Exception:
            _LOGGER.exception("scheduled job failed")

    async def _plan_job(self) -> None:
        await self._safe(self.plan)

    async def _deliver_job(self) -> None:
        await self._safe(self.deliver)

    def attach(self, scheduler: AsyncIOScheduler) -> None:
        """Add the planner (every minute) and the deliverer (every few seconds) to a scheduler."""
        first = datetime.now(UTC)
        for name, job, every in (
            ("ceping.plan", self._plan_job, PLAN_EVERY),
            ("ceping.deliver", self._deliver_job, DELIVER_EVERY),
        ):
            scheduler.add_job(
                job,
                "interval",
                seconds=every.total_seconds(),
                id=name,
                next_run_time=first,
                max_instances=1,
                coalesce=True,
                replace_existing=True,
            )


@dataclass
class RunningJobs:
    """The runner and its scheduler, kept in ``application.bot_data[JOBS_KEY]``."""

    runner: JobRunner
    scheduler: AsyncIOScheduler


def start_scheduler(runner: JobRunner) -> AsyncIOScheduler:
    """A started AsyncIOScheduler on the running loop, running the runner's jobs."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    runner.attach(scheduler)
    scheduler.start()
    return scheduler


async def start(application: Application) -> None:  # type: ignore[type-arg]
    """Start the jobs beside the bot (bot/app.py's post_init)."""
    services: Services = application.bot_data[SERVICES_KEY]
    runner = JobRunner(
        services.engine, application.bot, services.settings.zone, clock=services.clock
    )
    application.bot_data[JOBS_KEY] = RunningJobs(runner, start_scheduler(runner))


async def stop(application: Application) -> None:  # type: ignore[type-arg]
    """Stop the jobs (bot/app.py's post_shutdown); unsent rows stay in the outbox."""
    running: RunningJobs | None = application.bot_data.pop(JOBS_KEY, None)
    if running is not None and running.scheduler.running:
        await _finish_running_jobs(running.scheduler)
        running.scheduler.shutdown(wait=False)


async def _finish_running_jobs(scheduler: AsyncIOScheduler, timeout: float = 10.0) -> None:
    """Let a job that is running finish before the scheduler stops (issue 10, item 10).

    ``shutdown(wait=False)`` cancels a job in flight (a delivery reading the outbox), which
    then logged "Task was destroyed but it is pending" and a traceback on every stop that
    happened to meet one. Pausing stops new runs; the running one is awaited first.
    """
    scheduler.pause()
    executor = scheduler._lookup_executor("default")  # APScheduler 3 has no public API
    pending = [f for f in getattr(executor, "_pending_futures", ()) if not f.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)


def runner_of(application: Application) -> JobRunner | None:  # type: ignore[type-arg]
    """The runner started by :func:`start`, if any."""
    running: RunningJobs | None = application.bot_data.get(JOBS_KEY)
    return running.runner if running is not None else None


def make_bot(settings: Settings) -> Bot:
    """A Bot for the jobs alone (``ceping jobs``, ``ceping remind``)."""
    extra = {"base_file_url": settings.bot_file_url} if settings.bot_file_url else {}
    return Bot(settings.require_token(), base_url=settings.bot_api_url, **extra)


async def serve_jobs(settings: Settings, *, stop_event: asyncio.Event | None = None) -> None:
    """Run the jobs without the bot until ``stop_event`` is set (or forever)."""
    engine = engine_for(settings.database_url)
    async with make_bot(settings) as bot:
        runner = JobRunner(engine, bot, settings.zone)
        scheduler = start_scheduler(runner)
        try:
            await (stop_event or asyncio.Event()).wait()
        finally:
            scheduler.shutdown(wait=False)


def run_jobs(settings: Settings) -> None:
    """``ceping jobs``: the jobs alone, with their own Bot, until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_jobs(settings))


async def deliver_once(settings: Settings) -> DeliveryReport:
    """Deliver what is due now with a Bot of our own, then return."""
    engine = engine_for(settings.database_url)
    async with make_bot(settings) as bot:
        return await JobRunner(engine, bot, settings.zone).deliver()


def remind_now(
    settings: Settings,
    force: bool = False,
    *,
    now: datetime | None = None,
    deliver: bool = True,
) -> int:
    """``ceping remind [--force]``: enqueue a reminder round now; how many messages.

    Quiet hours are respected unless forced (the messages then wait for their end). With
    ``deliver`` the due messages are also sent at once, so no running bot is needed.
    """
    engine = engine_for(settings.database_url)
    enqueued = enqueue_manual(engine, now=now or utcnow(), zone=settings.zone, force=force)
    if deliver and enqueued.count:
        asyncio.run(deliver_once(settings))
    return enqueued.count
