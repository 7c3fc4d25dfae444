"""What every handler needs besides the update: the database, the settings and the clock.

Handlers keep no state of their own in memory: everything a conversation needs is
read from and written to the database, so a restart or a second bot process
changes nothing for the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from telegram.ext import CallbackContext

from storage.settings import Settings
from storage.types import utcnow

SERVICES_KEY = "ceping.services"


@dataclass(frozen=True)
class BotServices:
    """The shared services of one Application."""

    engine: Engine
    settings: Settings
    # Injectable so tests move time instead of sleeping.
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        """The current time, aware UTC."""
        return self.clock()


def services(context: CallbackContext) -> BotServices:  # type: ignore[type-arg]
    """The services stored on the Application when it was built."""
    return context.application.bot_data[SERVICES_KEY]
