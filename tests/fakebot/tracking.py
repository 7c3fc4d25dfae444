"""Accounting hooks inside the Application: when is an update fully handled?

Installed by the harness so the fake Bot API (tests.fakebot.server) can tell a test when
PTB has finished an update and every task it spawned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from telegram.ext import BaseUpdateProcessor, ContextTypes

from tests.fakebot.records import LOGGER, AnyApplication

if TYPE_CHECKING:
    pass

if TYPE_CHECKING:
    from tests.fakebot.server import FakeBotApi


# ---------------------------------------------------------------------------------------------
# Accounting hooks inside the Application: when is an update fully handled?
# ---------------------------------------------------------------------------------------------


def _create_task_tasks(application: AnyApplication) -> set[asyncio.Task[Any]]:
    """Tasks the Application started with create_task (non-blocking handlers among them)."""
    return set(getattr(application, "_Application__create_task_tasks", set()))


class TrackingUpdateProcessor(BaseUpdateProcessor):
    """Wraps an Application's update processor and tells the fake server when an update is done.

    "Done" means the handler coroutine returned and every task the Application started with
    create_task meanwhile (block=False handlers) has finished too.
    """

    def __init__(self, inner: BaseUpdateProcessor, api: FakeBotApi, application: AnyApplication):
        super().__init__(inner.max_concurrent_updates)
        self.inner = inner
        self.api = api
        self.application = application
        self.watchers: set[asyncio.Task[None]] = set()

    async def report_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Error handler: record the exception for the phone that caused it, and log it."""
        error = context.error
        if error is None:
            return
        update_id = getattr(update, "update_id", None)
        self.api.record_bot_error(update_id, error)
        LOGGER.error("bot raised while handling update %s", update_id, exc_info=error)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the update through the wrapped processor, then report it processed."""
        before = _create_task_tasks(self.application)
        update_id = getattr(update, "update_id", None)
        if update_id is not None:
            self.api.mark_started(update_id)
        try:
            await self.inner.do_process_update(update, coroutine)
        finally:
            spawned = {
                task
                for task in _create_task_tasks(self.application) - before
                if not task.get_name().endswith("process_concurrent_update")
            }
            if update_id is not None:
                self._report_when_done(update_id, spawned)

    def _report_when_done(self, update_id: int, spawned: set[asyncio.Task[Any]]) -> None:
        if not spawned:
            self.api.mark_processed(update_id)
            return

        async def watch() -> None:
            await asyncio.wait(spawned)
            self.api.mark_processed(update_id)

        watcher = asyncio.create_task(watch(), name=f"fakebot:watch-update-{update_id}")
        self.watchers.add(watcher)
        watcher.add_done_callback(self.watchers.discard)

    async def initialize(self) -> None:
        """Delegate to the wrapped processor."""
        await self.inner.initialize()

    async def shutdown(self) -> None:
        """Delegate to the wrapped processor."""
        await self.inner.shutdown()


def install_tracking(application: AnyApplication, api: FakeBotApi) -> None:
    """Swap in a TrackingUpdateProcessor and an error handler that report to api."""
    processor = TrackingUpdateProcessor(application.update_processor, api, application)
    # No public setter exists; the slot is assignable and read on every update.
    application._update_processor = processor  # type: ignore[misc]
    application.add_error_handler(processor.report_error)


def remove_tracking(application: AnyApplication) -> None:
    """Undo install_tracking."""
    processor = application.update_processor
    if isinstance(processor, TrackingUpdateProcessor):
        application.remove_error_handler(processor.report_error)
        application._update_processor = processor.inner  # type: ignore[misc]
