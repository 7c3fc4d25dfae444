"""``ceping run``, ``ceping jobs`` and ``ceping remind``.

The bot and the jobs are imported when used: ``ceping import`` needs neither.
"""

from __future__ import annotations

import argparse

from telegram.error import InvalidToken, NetworkError

from bot.cli.env import EXIT_OK, CliEnv, CliError, database

# --- The bot, the jobs and the export (imported when used: `ceping import` needs none) --------


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
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace, env: CliEnv) -> int:
    """Run the scheduled jobs (reminders, interim results, outbox)."""
    from jobs.runner import run_jobs

    with database(env):
        pass
    run_jobs(env.settings)
    return EXIT_OK


def cmd_remind(args: argparse.Namespace, env: CliEnv) -> int:
    """Queue reminders now (--force: also in quiet hours)."""
    from jobs.runner import remind_now

    with database(env):
        pass
    count = remind_now(env.settings, force=args.force)
    env.say("cli.remind.done", count=count)
    return EXIT_OK
