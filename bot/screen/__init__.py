"""The meeting screen: live participation and the on-the-spot announcement on a page.

A Mini App (button in /tally and /publish, identity from Telegram's initData) and a
projector link (/screen BRANCH, signed, read-only, for the meeting's length), both served
by the bot process (``bot.screen.server``). See README, "The meeting screen".
"""

from __future__ import annotations

import secrets
from typing import Any

from bot.screen.command import COMMANDS, handlers, mini_app_button
from bot.screen.settings import screen_settings

__all__ = ["COMMANDS", "enabled", "handlers", "mini_app_button", "run"]


def enabled() -> bool:
    """Whether ``ceping run`` serves the screen (a public URL is configured)."""
    return screen_settings().base_url is not None


def run(
    application: Any,
    settings: Any,
    webhook_url: str | None,
    listen: str,
    port: int,
    secret_token: str | None,
) -> None:
    """``ceping run`` with the screen: the bot, and the screen on the webhook's port (webhook
    mode) or on ``CEPING_SCREEN_PORT`` (polling mode), until Ctrl-C."""
    from bot.app import install_token_redaction  # bot.app imports this package
    from bot.screen.server import run as serve

    # Telegram sends this secret in a header; the webhook route refuses requests without it.
    secret = secret_token or secrets.token_urlsafe(32)
    install_token_redaction(secret)
    serve(
        application,
        settings,
        webhook_url=webhook_url,
        listen=listen,
        port=port,
        secret_token=secret,
    )
