"""The first tally of each open round, taken by the bot itself right after it starts.

Why: a tally reuses what the last one computed for every branch whose rows are unchanged
(storage/tally_memo.py), but that memo lives in the process, so the first tally after a
start computes the whole county, about 2.5× the raw-SQL floor (issue 12). The bot takes
that tally in a worker thread as soon as it starts, off any user's path; an organizer's
first /tally then meets the memo. Every webhook worker warms its own memo.

A warm-up that fails changes nothing: it is logged, and the first tally is simply cold.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from storage import tallies
from storage.runtime import SERVICES_KEY, Services

log = logging.getLogger(__name__)

TASK_KEY = "ceping.warm_task"


def start(application: Any) -> None:
    """Begin the warm-up beside the bot (bot/app.py's post_init)."""
    services: Services = application.bot_data[SERVICES_KEY]
    application.bot_data[TASK_KEY] = asyncio.create_task(_warm(services))


async def finished(application: Any) -> None:
    """Wait for the warm-up, if one was started (shutdown, and the tests)."""
    task: asyncio.Task[None] | None = application.bot_data.get(TASK_KEY)
    if task is not None:
        await task


async def _warm(services: Services) -> None:
    try:
        rounds = await asyncio.to_thread(
            tallies.warm_open_rounds, services.engine, now=services.now()
        )
    except Exception:  # a cache only: the bot must run on without it
        log.warning("the start-up tally failed; the first tally will compute it", exc_info=True)
        return
    log.debug("tallied open rounds %s at start", rounds)  # a cache warmed: no news
