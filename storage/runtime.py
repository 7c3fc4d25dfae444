"""What the bot's handlers and the jobs share in one process: the database, the settings, the clock.

Handlers keep no state of their own in memory: everything a conversation needs is
read from and written to the database, so a restart or a second bot process
changes nothing for the user. It lives here, below ``bot`` and ``jobs``, because both
read it from the Application's ``bot_data``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from storage.db import Engine
from storage.settings import Settings
from storage.types import utcnow

SERVICES_KEY = "ceping.services"
"""The ``bot_data`` key under which the Application keeps its ``Services``."""


@dataclass(frozen=True)
class Services:
    """The shared services of one Application (or of the jobs running beside it)."""

    engine: Engine
    settings: Settings
    # Injectable so tests move time instead of sleeping.
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        """The current time, aware UTC."""
        return self.clock()
