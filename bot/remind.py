"""/remind: an organizer sends a reminder round now (quiet hours are respected).

The reminders go through the outbox like the scheduled ones, so a second /remind in the
same minute, a second bot process or a restart sends nothing twice. Only organizers (by
their roles in the database) may use it; a refusal is polite and audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from telegram import Update
from telegram.ext import BaseHandler, CommandHandler

from bot.common import (
    PRIVATE,
    Actor,
    Context,
    MenuCommand,
    Viewer,
    audit,
    in_transaction,
    reply,
    services,
    viewer,
)
from jobs.digests import local_time
from jobs.runner import Enqueued, enqueue_manual, runner_of
from storage.db import Session
from surveys.categories import Role

COMMANDS = (MenuCommand("remind", "command.remind", roles=frozenset({Role.ORGANIZER.value})),)
ACTION = "jobs.remind"


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The handlers of this module, in the order they must be registered."""
    return [CommandHandler("remind", remind, filters=PRIVATE)]


def _record(
    update: Update, who: Viewer, outcome: str, detail: dict[str, object]
) -> Callable[[Session], None]:
    """The audit row of one /remind, as work for ``in_transaction``."""

    def work(session: Session) -> None:
        audit(
            session,
            actor=Actor.of(update, who.person_id),
            action=ACTION,
            outcome=outcome,
            detail=detail,
        )

    return work


async def remind(update: Update, context: Context) -> None:
    """/remind: organizers only; enqueue a reminder round and say when it goes out."""
    who = await viewer(update, context)
    if Role.ORGANIZER.value not in who.roles:
        await in_transaction(context, _record(update, who, "refused", {"roles": list(who.roles)}))
        await reply(update, context, "jobs.remind.refused", locale=who.locale)
        return
    bot = services(context)
    now = bot.now()
    enqueued: Enqueued = await asyncio.to_thread(
        enqueue_manual, bot.engine, now=now, zone=bot.settings.zone
    )
    await in_transaction(context, _record(update, who, "ok", {"enqueued": enqueued.count}))
    await _answer(update, context, who, enqueued, now)
    runner = runner_of(context.application)
    if runner is not None and enqueued.count:
        context.application.create_task(runner.deliver())


async def _answer(
    update: Update, context: Context, who: Viewer, enqueued: Enqueued, now: datetime
) -> None:
    """Tell the organizer how many reminders go out, and when if quiet hours hold them."""
    if not enqueued.count:
        await reply(update, context, "jobs.remind.nothing", locale=who.locale)
        return
    first = enqueued.first_send_at
    if first is not None and first > now:
        zone = services(context).settings.zone
        at = local_time(first, zone, who.locale)
        await reply(
            update, context, "jobs.remind.quiet", locale=who.locale, count=enqueued.count, at=at
        )
        return
    await reply(update, context, "jobs.remind.sent", locale=who.locale, count=enqueued.count)
