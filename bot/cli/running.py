"""``ceping run``, ``ceping jobs`` and ``ceping remind``.

The bot and the jobs are imported when used: ``ceping import`` needs neither.
"""

from __future__ import annotations

import argparse
import logging

from telegram.error import InvalidToken, NetworkError

from bot.cli.env import EXIT_OK, CliEnv, CliError, database

# --- The bot, the jobs and the export (imported when used: `ceping import` needs none) --------


log = logging.getLogger("ceping")

# What PTB and APScheduler log while stopping: four lines, and with Telegram a traceback
# from the last getUpdates, which only marks fetched updates read (PTB suppresses the
# error itself). A stop is one line of ours instead (issue 10, item 10).
_STOP_NOISE = {
    ("telegram.ext.Application", "Application is stopping. This might take a moment."),
    ("telegram.ext.Application", "Application.stop() complete"),
    ("apscheduler.scheduler", "Scheduler has been shut down"),
    ("apscheduler.scheduler", "Paused scheduler job processing"),
}
_FINAL_GET_UPDATES = "Error while calling `get_updates` one more time"


class QuietStop(logging.Filter):
    """Drops the stop chatter and the final getUpdates traceback from the operator's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name == "telegram.ext.Updater" and message.startswith(_FINAL_GET_UPDATES):
            return False
        return (record.name, message) not in _STOP_NOISE


def install_quiet_stop() -> None:
    """Put QuietStop on the loggers that speak while stopping (a logger's filters see every
    record logged on it, whatever handlers the bot configures later)."""
    for name in {name for name, _ in _STOP_NOISE} | {"telegram.ext.Updater"}:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QuietStop) for f in logger.filters):
            logger.addFilter(QuietStop())


def cmd_run(args: argparse.Namespace, env: CliEnv) -> int:
    """Run the Telegram bot (long polling, or a webhook with --webhook-url)."""
    from bot.app import WebhookUnavailable, run
    from bot.workers import WorkersRefused, check_workers

    try:  # refused before anything else: no database, no network
        workers = 1 if args.workers is None else args.workers
        check_workers(env.settings, workers, args.webhook_url)
    except WorkersRefused as error:
        raise CliError("cli.run.refused", detail=str(error)) from None
    with database(env):
        pass
    install_quiet_stop()
    options = {
        "webhook_url": args.webhook_url,
        "listen": args.listen,
        "port": args.port,
        "workers": args.workers,
    }
    try:
        run(
            env.settings,
            **{name: value for name, value in options.items() if value is not None},
        )
    except InvalidToken:
        raise CliError("cli.run.invalid_token") from None
    except NetworkError:
        # The URL is the base without the token (the token is appended per request).
        raise CliError("cli.run.unreachable", url=env.settings.bot_api_url) from None
    except (WebhookUnavailable, WorkersRefused) as error:
        raise CliError("cli.run.refused", detail=str(error)) from None
    log.info("the bot stopped")
    return EXIT_OK


def _redact_token(env: CliEnv) -> None:
    """Blank the bot token out of every log record, as ``ceping run`` does (issue 10, item 9).

    The jobs send through the Bot API too, and httpx logs request URLs that carry the token.
    """
    from bot.app import install_token_redaction

    token = env.settings.bot_token
    if token is not None and token.get_secret_value().strip():
        install_token_redaction(token.get_secret_value())


def cmd_jobs(args: argparse.Namespace, env: CliEnv) -> int:
    """Run the scheduled jobs (reminders, interim results, outbox)."""
    from jobs.runner import run_jobs

    _redact_token(env)
    with database(env):
        pass
    run_jobs(env.settings)
    return EXIT_OK


def cmd_remind(args: argparse.Namespace, env: CliEnv) -> int:
    """Queue reminders now (--force: also in quiet hours)."""
    from jobs.runner import remind_now

    _redact_token(env)
    with database(env):
        pass
    count = remind_now(env.settings, force=args.force)
    env.say("cli.remind.done", count=count)
    return EXIT_OK
