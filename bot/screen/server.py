"""One web server for the bot process: the screen, and Telegram's webhook in webhook mode.

PTB documents running its Application inside a custom ASGI server ("customwebhookbot"):
the server owns the port, the webhook route checks Telegram's secret-token header and puts
the update on ``application.update_queue``. In polling mode the same server serves the
screen alone on ``CEPING_SCREEN_PORT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import Update
from telegram.ext import Application

from bot.screen.settings import screen_settings
from bot.screen.web import ScreenService, create_app
from storage.runtime import SERVICES_KEY, Services
from storage.settings import Settings

AnyApplication = Application[Any, Any, Any, Any, Any, Any]
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WORKER_HEADER = "X-Ceping-Worker"
"""Names the worker that took a webhook request, so an operator (and the tests) can see the
kernel spreading requests over ``--workers K`` processes."""
BACKLOG = 2048
BOOTSTRAP_RETRIES = 5
GRACE = 3
"""Seconds to let requests finish at shutdown: live feeds never end by themselves."""


def screen_service(application: AnyApplication, settings: Settings) -> ScreenService:
    """The screen's service on the bot's own engine, clock and token."""
    bot_services: Services = application.bot_data[SERVICES_KEY]

    def username() -> str | None:
        if settings.bot_username:
            return settings.bot_username
        try:
            return application.bot.username
        except RuntimeError:  # the bot is not initialized yet
            return None

    return ScreenService(
        engine=bot_services.engine,
        bot_token=settings.require_token(),
        clock=bot_services.now,
        zone=settings.zone,
        bot_username=username,
        link_days=settings.invitation_days,
    )


def webhook_route(application: AnyApplication, path: str, secret: str, worker: int = 0) -> Route:
    """Telegram's webhook: a request without the secret header is refused, never handled."""
    headers = {WORKER_HEADER: str(worker)}

    async def receive(request: Request) -> Response:
        sent = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(sent.encode(), secret.encode()):
            return Response(status_code=403)
        try:
            update = Update.de_json(await request.json(), application.bot)
        except ValueError:
            return Response(status_code=400)
        await application.update_queue.put(update)
        return Response(headers=headers)

    return Route("/" + path.strip("/"), receive, methods=["POST"])


@contextlib.asynccontextmanager
async def screen_server(
    service: ScreenService, host: str, port: int, extra_routes: list[Route] | None = None
) -> AsyncIterator[uvicorn.Server]:
    """Serve the screen (and extra routes) until the block ends; port 0 picks a free one."""
    config = uvicorn.Config(
        create_app(service, extra_routes),
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=GRACE,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start (port in use…)
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


def bound_port(server: uvicorn.Server) -> int:
    """The port a running server listens on."""
    return int(server.servers[0].sockets[0].getsockname()[1])


def shared_socket(host: str, port: int, *, listening: bool = True) -> socket.socket:
    """A TCP socket on host:port with SO_REUSEPORT, so several workers' sockets share the
    port and the kernel spreads new connections over the ones that listen."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listening:
        sock.listen(BACKLOG)
        sock.setblocking(False)
    return sock


def run(
    application: AnyApplication,
    settings: Settings,
    *,
    webhook_url: str | None,
    listen: str,
    port: int,
    secret_token: str,
    worker: int = 0,
    sockets: list[socket.socket] | None = None,
) -> None:
    """Run the bot with the screen until Ctrl-C (what ``ceping run`` does when the screen
    is enabled by ``CEPING_PUBLIC_URL``, and what each of ``--workers K`` runs).

    Worker 0 is the primary: it alone registers the webhook, publishes the menus and runs
    the scheduled jobs (the other workers answer updates only), so each happens once.
    """
    asyncio.run(
        _serve(application, settings, webhook_url, listen, port, secret_token, worker, sockets)
    )


async def _serve(
    application: AnyApplication,
    settings: Settings,
    webhook_url: str | None,
    listen: str,
    port: int,
    secret: str,
    worker: int = 0,
    sockets: list[socket.socket] | None = None,
) -> None:
    service = screen_service(application, settings)
    routes: list[Route] = []
    primary = worker == 0
    if webhook_url is not None:
        routes.append(webhook_route(application, urlparse(webhook_url).path, secret, worker))
    else:
        listen, port = screen_settings().screen_listen, screen_settings().screen_port
    config = uvicorn.Config(
        create_app(service, routes),
        host=listen,
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=GRACE,
    )
    server = uvicorn.Server(config)
    async with application:
        if primary and application.post_init is not None:
            await application.post_init(application)  # menus and jobs: once, in worker 0
        await application.start()
        if webhook_url is not None:
            if primary:  # one registration, whatever the number of workers
                await application.bot.set_webhook(
                    url=webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES
                )
        else:
            assert application.updater is not None
            await application.updater.start_polling(
                allowed_updates=Update.ALL_TYPES, bootstrap_retries=BOOTSTRAP_RETRIES
            )
        try:
            await server.serve(sockets)  # until Ctrl-C or SIGTERM (uvicorn handles both)
        finally:
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            await application.stop()
            if primary and application.post_shutdown is not None:
                await application.post_shutdown(application)
