"""``ceping run --webhook-url URL --workers K``: K bot processes behind one webhook port.

The parent opens K listening sockets on one port (SO_REUSEPORT), then starts K worker
processes, each serving one of them; the kernel spreads Telegram's connections over the
sockets. Worker 0 is the primary: it alone registers the webhook,
publishes the menus and runs the scheduled jobs (planner and deliverer), so each happens
once; the outbox's claims would keep delivery exactly-once even if it did not
(storage/outbox.py). Workers share nothing but the PostgreSQL database, so a conversation
step saved by one worker is read by whichever takes the person's next update.

SQLite is refused: it lets one process write at a time.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import signal
import socket
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from types import FrameType

from storage.settings import Settings
from surveys.i18n import t

log = logging.getLogger(__name__)

MOST_WORKERS = 64
STOP_GRACE = 20.0
"""Seconds a worker has to finish after SIGTERM before it is killed."""


class WorkersRefused(RuntimeError):
    """``--workers`` cannot be honoured with these settings (the message says why)."""


@dataclass(frozen=True)
class WorkerPlan:
    """What every worker needs to serve: the same settings, URL, port and secret."""

    settings: Settings
    webhook_url: str
    listen: str
    port: int
    secret: str
    count: int


def check_workers(settings: Settings, count: int, webhook_url: str | None) -> None:
    """Refuse a worker count these settings cannot run (a catalog message, nothing started)."""
    locale = settings.locale
    if not 1 <= count <= MOST_WORKERS:
        raise WorkersRefused(t("run.workers_invalid", locale, count=count, most=MOST_WORKERS))
    if count == 1:
        return
    if webhook_url is None:
        raise WorkersRefused(t("run.workers_need_webhook", locale, count=count))
    if settings.database_url.startswith("sqlite"):
        raise WorkersRefused(t("run.workers_sqlite", locale, count=count))


def run_workers(plan: WorkerPlan) -> None:
    """Start the workers and wait; Ctrl-C or SIGTERM stops them all, as does one failing."""
    from bot.screen.server import shared_socket

    # Every socket listens before any worker starts: a connection that arrives while a
    # worker is still starting waits in its socket's backlog instead of being refused.
    first = shared_socket(plan.listen, plan.port)
    port = int(first.getsockname()[1])
    sockets = [first] + [shared_socket(plan.listen, port) for _ in range(plan.count - 1)]
    plan = WorkerPlan(plan.settings, plan.webhook_url, plan.listen, port, plan.secret, plan.count)
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited engine
    workers = [
        context.Process(
            target=serve_worker, args=(plan, index, sock), name=f"ceping-worker-{index}"
        )
        for index, sock in enumerate(sockets)
    ]
    stopping: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for worker in workers:
            worker.start()
        for sock in sockets:
            sock.close()  # each worker has its own copy now
        log.info("%d workers on %s:%d", plan.count, plan.listen, port)
        failed = _wait(workers, stopping)
    finally:
        _stop_all(workers)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if failed is not None:
        index, code = failed
        raise WorkersRefused(t("run.worker_failed", plan.settings.locale, index=index, code=code))


def _wait(workers: list[BaseProcess], stopping: list[int]) -> tuple[int, int] | None:
    """Until a signal arrives or a worker ends; (index, exit code) of a worker that failed."""
    sentinels = [worker.sentinel for worker in workers]
    while not stopping:
        multiprocessing.connection.wait(sentinels, timeout=0.5)
        for index, worker in enumerate(workers):
            if worker.exitcode is not None and not stopping:
                return index, worker.exitcode
    return None


def _stop_all(workers: list[BaseProcess]) -> None:
    """SIGTERM every live worker (uvicorn then finishes its requests), kill the stragglers."""
    for worker in workers:
        if worker.is_alive():
            with contextlib.suppress(ProcessLookupError):
                worker.terminate()
    for worker in workers:
        worker.join(STOP_GRACE)
        if worker.is_alive():
            worker.kill()
            worker.join()


def serve_worker(plan: WorkerPlan, index: int, sock: socket.socket) -> None:
    """One worker: the whole bot on its own socket; worker 0 also the webhook and the jobs."""
    from bot import collector
    from bot.app import build_application, configure_logging, install_token_redaction
    from bot.screen.server import run
    from storage.db import engine_for

    configure_logging()
    install_token_redaction(plan.secret)
    engine = engine_for(plan.settings.database_url)
    application = build_application(plan.settings, engine, with_jobs=index == 0)
    collector.settle()
    with contextlib.suppress(KeyboardInterrupt):
        run(
            application,
            plan.settings,
            webhook_url=plan.webhook_url,
            listen=plan.listen,
            port=plan.port,
            secret_token=plan.secret,
            worker=index,
            sockets=[sock],
        )
