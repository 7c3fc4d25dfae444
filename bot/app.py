"""The Telegram Application: built in one place, handlers in one list, run by polling or webhook.

``ceping run`` calls :func:`run`. Handlers keep nothing in memory (see ``storage.runtime``)
and run concurrently, so a meeting of two thousand people is not answered one at a time.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import secrets
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from telegram import MessageEntity, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot import answering, collector, lang, registration, remind, reports, screen, warm
from bot.common import (
    COMMANDS_KEY,
    PRIVATE,
    Context,
    MenuCommand,
    all_commands,
    bot_commands,
    help_text,
    in_transaction,
    reply,
    send_text,
    viewer_in,
    visible_commands,
)
from bot.workers import WorkerPlan, check_workers, run_workers
from jobs import runner
from storage.db import Engine, engine_for
from storage.runtime import SERVICES_KEY, Services
from storage.settings import Settings
from storage.types import utcnow
from surveys.i18n import normalize_locale, t

log = logging.getLogger(__name__)

WITH_JOBS_KEY = "ceping.with_jobs"
WARM_KEY = "ceping.warm_tallies"
API_POOL_WAIT = 10.0
"""Seconds a Bot API request may wait for one of the ``api_connections`` (PTB's default is
1 s, after which the request fails): in a burst a tap's answer waits its turn, not fails."""
PRIORITY_GROUP = -1
"""Handler group of modules' priority handlers, before the main list (group 0)."""
MAX_CONCURRENT_UPDATES = 128
"""Updates handled at once; database work runs in threads, so this is not a thread count."""

MENU_LANGUAGES = (("zh_CN", None), ("en", "en"))
"""(catalog locale, Telegram language_code) of the default command menus; None is the default."""

GROUPS = filters.ChatType.GROUPS
MEDIA = ~filters.TEXT & ~filters.CONTACT & ~filters.StatusUpdate.ALL
"""Anything but text and contacts: stickers, photos, voice, video, documents, locations…"""

AnyApplication = Application[Any, Any, Any, Any, Any, Any]

# A help and a cancel that every module shares; the modules add their own commands.
GENERAL_COMMANDS = (
    MenuCommand("help", "command.help"),
    MenuCommand("cancel", "command.cancel"),
)


# --- Building --------------------------------------------------------------------------------


def build_application(
    settings: Settings,
    engine: Engine,
    *,
    clock: Callable[[], datetime] = utcnow,
    base_url: str | None = None,
    base_file_url: str | None = None,
    with_jobs: bool = True,
    warm_tallies: bool = True,
) -> AnyApplication:
    """The bot: services in bot_data, every handler in order, error handler, menus and jobs.

    ``with_jobs=False`` leaves the scheduled jobs out (conversation tests that must not
    see reminders arrive in the middle of a story). ``warm_tallies=False`` leaves out the
    tally of each open round taken at start (bot/warm.py), for tests that watch the memo.
    """
    token = settings.require_token()
    install_token_redaction(token)
    quiet_http_loggers()
    builder = (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url or settings.bot_api_url)
        .concurrent_updates(MAX_CONCURRENT_UPDATES)
        .connection_pool_size(settings.api_connections)
        .pool_timeout(API_POOL_WAIT)
        .post_init(post_init)
        .post_shutdown(post_shutdown)
    )
    file_url = base_file_url or settings.bot_file_url
    if file_url:
        builder = builder.base_file_url(file_url)
    application = builder.build()
    application.bot_data[SERVICES_KEY] = Services(engine, settings, clock)
    application.bot_data[COMMANDS_KEY] = checked(menu_commands())
    application.bot_data[WITH_JOBS_KEY] = with_jobs
    application.bot_data[WARM_KEY] = warm_tallies
    application.add_handlers(priority_handler_list(), group=PRIORITY_GROUP)
    application.add_handlers(handler_list())
    application.add_error_handler(on_error)
    return application


def handler_list() -> list[BaseHandler]:  # type: ignore[type-arg]
    """Every handler, top to bottom; in a group the first matching handler wins."""
    return [
        # Group chats first: nothing below may answer there, commands get one short reply.
        MessageHandler(GROUPS & filters.UpdateType.MESSAGE & filters.COMMAND, group_command),
        MessageHandler(~filters.ChatType.PRIVATE, ignore),
        *registration.handlers(),
        *lang.handlers(),
        CommandHandler("help", show_help, filters=PRIVATE),
        *answering.handlers(),
        *reports.handlers(),
        *screen.handlers(),
        *remind.handlers(),
        # After the modules, so one that has something to cancel answers /cancel itself.
        CommandHandler("cancel", cancel, filters=PRIVATE),
        *answering.fallback_handlers(),
        MessageHandler(PRIVATE & filters.COMMAND, unknown_command),
        MessageHandler(PRIVATE & MEDIA, media_not_understood),
        MessageHandler(PRIVATE & filters.TEXT, text_not_understood),
    ]


def priority_handler_list() -> list[BaseHandler]:  # type: ignore[type-arg]
    """Handlers that see an update before the main list and end it with ApplicationHandlerStop.

    A module waiting for typed input (a reason, a date…) answers it here, before the
    answering module's catch-all text handler; when it is not waiting it lets the update pass.
    """
    return [
        *module_priority_handlers(answering),
        *module_priority_handlers(reports),
    ]


def module_priority_handlers(module: object) -> list[BaseHandler]:  # type: ignore[type-arg]
    """A module's ``priority_handlers()``, if it has any."""
    declared = getattr(module, "priority_handlers", None)
    return list(declared()) if declared is not None else []


def menu_commands() -> tuple[MenuCommand, ...]:
    """The commands of every module, in the order the menu shows them."""
    return (
        *registration.COMMANDS,
        *module_commands(answering),
        *module_commands(reports),
        *screen.COMMANDS,
        *remind.COMMANDS,
        *lang.COMMANDS,
        *GENERAL_COMMANDS,
    )


def checked(commands: Sequence[MenuCommand]) -> tuple[MenuCommand, ...]:
    """The commands, once every description exists in every language (else MissingMessage).

    A missing text then stops the bot at start, not in the middle of someone's registration.
    """
    for command in commands:
        for locale, _ in MENU_LANGUAGES:
            t(command.description_key, locale)
    return tuple(commands)


def module_commands(module: object) -> Sequence[MenuCommand]:
    """A module's ``COMMANDS`` (modules still being written may not declare any yet)."""
    return tuple(getattr(module, "COMMANDS", ()))


# --- Lifecycle -------------------------------------------------------------------------------


async def post_init(application: AnyApplication) -> None:
    """Publish the command menus, start the scheduled jobs, and tally the open rounds."""
    await publish_default_menus(application)
    if application.bot_data.get(WITH_JOBS_KEY, True):
        await runner.start(application)
    if application.bot_data.get(WARM_KEY, True):
        warm.start(application)


async def post_shutdown(application: AnyApplication) -> None:
    """Let the start-up tally finish, then stop the scheduled jobs."""
    await warm.finished(application)
    if application.bot_data.get(WITH_JOBS_KEY, True):
        await runner.stop(application)


async def publish_default_menus(application: AnyApplication) -> None:
    """The menu everyone sees, in Chinese by default and in English for English clients."""
    commands = visible_commands(application.bot_data[COMMANDS_KEY], (), registered=False)
    for locale, language_code in MENU_LANGUAGES:
        await application.bot.set_my_commands(
            bot_commands(commands, locale), language_code=language_code
        )


def run(
    settings: Settings,
    *,
    webhook_url: str | None = None,
    listen: str = "127.0.0.1",
    port: int = 8443,
    secret_token: str | None = None,
    workers: int | None = None,
) -> None:
    """Run the bot until Ctrl-C: long polling, or a webhook when webhook_url is given.

    ``workers`` (webhook mode; above 1 on PostgreSQL only) runs that many worker processes
    on one port: bot/workers.py. Refused otherwise with WorkersRefused, before anything
    starts. Without it, webhook mode is one process as before.
    """
    check_workers(settings, 1 if workers is None else workers, webhook_url)
    if webhook_url is not None and workers is not None:
        configure_logging()
        secret = secret_token or secrets.token_urlsafe(32)  # the same in every worker
        install_token_redaction(secret)
        run_workers(WorkerPlan(settings, webhook_url, listen, port, secret, workers))
        return
    if webhook_url is not None and importlib.util.find_spec("tornado") is None:
        raise WebhookUnavailable(t("run.webhook_unavailable", settings.locale))
    configure_logging()
    application = build_application(settings, engine_for(settings.database_url))
    collector.settle()
    if screen.enabled():  # the screen and the webhook share one ASGI server: bot/screen/server.py
        screen.run(application, settings, webhook_url, listen, port, secret_token)
        return
    if webhook_url is None:
        application.run_polling(
            allowed_updates=Update.ALL_TYPES,
            drop_pending_updates=False,
            # Ride out a short network drop while starting, as on a township office line.
            bootstrap_retries=BOOTSTRAP_RETRIES,
        )
        return
    # Telegram sends this secret in a header; PTB refuses requests that lack it.
    secret = secret_token or secrets.token_urlsafe(32)
    install_token_redaction(secret)
    application.run_webhook(
        listen=listen,
        port=port,
        url_path=webhook_path(webhook_url),
        webhook_url=webhook_url,
        secret_token=secret,
        allowed_updates=Update.ALL_TYPES,
        drop_pending_updates=False,
    )


BOOTSTRAP_RETRIES = 5


def configure_logging(level: int = logging.INFO) -> None:
    """One line per event on stderr for the operator; the token is redacted by the app."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    quiet_http_loggers()
    # PTB logs a full traceback when it cannot start; the CLI reports that in one line.
    logging.getLogger("telegram.ext").addFilter(_drop_startup_traceback)


def _drop_startup_traceback(record: logging.LogRecord) -> bool:
    """Keep PTB's "could not start" message but not its traceback (the CLI explains it)."""
    if record.getMessage().startswith("Network Retry Loop (Bootstrap"):
        record.exc_info = None
        record.exc_text = None
    return True


class WebhookUnavailable(RuntimeError):
    """Webhook mode needs PTB's webhooks extra (tornado), which is not installed."""


def webhook_path(webhook_url: str) -> str:
    """The local path the webhook listens on: the public URL's path (never the token)."""
    return urlparse(webhook_url).path.strip("/")


# --- General handlers ------------------------------------------------------------------------


async def show_help(update: Update, context: Context) -> None:
    """/help: the commands this person may use."""
    who = await in_transaction(context, lambda session: viewer_in(session, update))
    commands = visible_commands(all_commands(context), who.roles, registered=who.registered)
    await send_text(update, context, help_text(commands, who.locale))


async def cancel(update: Update, context: Context) -> None:
    """/cancel when no module had a step waiting: nothing under way, or a survey kept."""
    await answering.cancel(update, context)


async def unknown_command(update: Update, context: Context) -> None:
    """A command no module knows."""
    await reply(update, context, "fallback.unknown_command")


async def media_not_understood(update: Update, context: Context) -> None:
    """Stickers, photos, voice, files…: only text and buttons are read."""
    await reply(update, context, "fallback.media")


async def text_not_understood(update: Update, context: Context) -> None:
    """Text that no conversation step expects."""
    who = await in_transaction(context, lambda session: viewer_in(session, update))
    key = "fallback.text" if who.registered else "fallback.text_unregistered"
    await reply(update, context, key, locale=who.locale)


async def group_command(update: Update, context: Context) -> None:
    """A command for this bot in a group: ask to talk in a private chat (nothing else)."""
    if not addressed_to_me(update, context):
        return
    user = update.effective_user
    locale = normalize_locale(user.language_code if user is not None else None)
    await reply(update, context, "fallback.group", locale=locale)


async def ignore(update: Update, context: Context) -> None:
    """Group chatter and channel posts: not for this bot."""


def addressed_to_me(update: Update, context: Context) -> bool:
    """Whether a group command is plain (/help) or names this bot (/help@this_bot)."""
    message = update.effective_message
    if message is None:
        return False
    entities = message.parse_entities([MessageEntity.BOT_COMMAND])
    command = next(iter(entities.values()), "")
    _, _, name = command.partition("@")
    return not name or name.lower() == (context.bot.username or "").lower()


async def on_error(update: object, context: Context) -> None:
    """Log the failure (token redacted) and apologise to the user in a private chat."""
    log.error("error while handling an update", exc_info=context.error)
    if not isinstance(update, Update) or update.effective_chat is None:
        return
    if update.effective_chat.type != "private":
        return
    user = update.effective_user
    # No database here: the database may be what failed.
    locale = normalize_locale(user.language_code if user is not None else None)
    try:
        await send_text(update, context, t("error.generic", locale))
    except TelegramError as exc:
        log.warning("could not tell the user about the error: %s", exc)


# --- Logging without secrets -----------------------------------------------------------------

REDACTED = "[REDACTED]"
HTTP_LOGGERS = ("httpx", "httpcore")


class SecretRedactor:
    """A log record factory that blanks secrets (the bot token) out of every record.

    httpx logs request URLs, and Bot API URLs contain the token; a record factory sees
    every record of every logger before any handler does, so nothing can slip past.
    """

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner
        self.secrets: set[str] = set()

    def add(self, secret: str) -> None:
        """Redact this secret from now on (and its part after the colon, for bot tokens)."""
        self.secrets.add(secret)
        _, _, tail = secret.partition(":")
        if len(tail) >= 8:
            self.secrets.add(tail)

    def scrub(self, text: str) -> str:
        """The text with every secret replaced, whatever its case (error texts get re-cased)."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret.lower() in text.lower():
                text = re.sub(re.escape(secret), REDACTED, text, flags=re.IGNORECASE)
        return text

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if self.secrets:
            self.redact(record)
        return record

    def redact(self, record: logging.LogRecord) -> None:
        """Scrub the formatted message and any traceback of one record, in place."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = self.scrub(text)


def install_token_redaction(secret: str) -> SecretRedactor:
    """Make sure no log record anywhere in the process shows this secret."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, SecretRedactor):
        factory = SecretRedactor(factory)
        logging.setLogRecordFactory(factory)
    factory.add(secret)
    return factory


def quiet_http_loggers() -> None:
    """httpx logs every request URL at INFO; keep it to warnings (redacted all the same)."""
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
