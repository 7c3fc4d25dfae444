"""Drive the real python-telegram-bot Application against a fake Bot API over HTTP.

Usage (see README.md)::

    async with FakeBotApi() as api, running_bot(build_app, api):
        reply = await api.user(1001).send("/start")
        assert "欢迎" in reply.text
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from tests.fakebot.phone import BotCrashed, Phone, PhoneError, Reply, Screen
from tests.fakebot.server import AnyApplication, ApiError, Call, FakeBotApi

ApplicationFactory = Callable[[str, str, str], AnyApplication | Awaitable[AnyApplication]]
"""Builds the bot: (token, base_url, base_file_url) -> Application (or an awaitable of one)."""

__all__ = [
    "AnyApplication",
    "ApiError",
    "ApplicationFactory",
    "BotCrashed",
    "Call",
    "FakeBotApi",
    "Phone",
    "PhoneError",
    "Reply",
    "Screen",
    "build_application",
    "running_bot",
]


async def build_application(factory: ApplicationFactory, api: FakeBotApi) -> AnyApplication:
    """Call factory with api's token and URLs, awaiting it if it is async."""
    built = factory(api.token, api.base_url, api.base_file_url)
    return await built if inspect.isawaitable(built) else built


async def _call_hook(hook: Callable[[Any], Awaitable[None]] | None, app: AnyApplication) -> None:
    if hook is not None:
        await hook(app)


@contextlib.asynccontextmanager
async def running_bot(
    factory: ApplicationFactory | AnyApplication,
    api: FakeBotApi,
    *,
    polling: bool = True,
    poll_timeout: float = 10.0,
    drop_pending_updates: bool = False,
    allowed_updates: list[str] | None = None,
) -> AsyncIterator[AnyApplication]:
    """Run an Application like run_polling does (post_init/post_stop/post_shutdown included).

    factory is called as factory(token, base_url, base_file_url); an already built Application
    is accepted too. polling=False starts the Application without its Updater, for tests that
    hand updates over with phone.send(..., via=app). Stopping cancels the open long poll, so
    poll_timeout does not slow shutdown down.
    """
    app = factory if hasattr(factory, "update_queue") else await build_application(factory, api)  # type: ignore[arg-type]
    api.track(app)
    try:
        await app.initialize()
        await _call_hook(app.post_init, app)
        if polling:
            if app.updater is None:
                raise RuntimeError("polling=True needs an Application with an Updater")
            await app.updater.start_polling(
                poll_interval=0,
                timeout=timedelta(seconds=poll_timeout),
                drop_pending_updates=drop_pending_updates,
                allowed_updates=allowed_updates,
            )
        await app.start()
        yield app
    finally:
        await _stop(app)
        api.untrack(app)


async def _stop(app: AnyApplication) -> None:
    """Stop updater, application and hooks in run_polling's order, whatever state we are in."""
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
        await _call_hook(app.post_stop, app)
    if getattr(app, "_initialized", False):
        await app.shutdown()
        await _call_hook(app.post_shutdown, app)
