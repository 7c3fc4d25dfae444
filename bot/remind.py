"""/remind: an organizer sends a reminder round now (quiet hours are respected).

The reminders go through the outbox like the scheduled ones, so a second /remind in the
same minute, a second bot process or a restart sends nothing twice. Only organizers (by
their roles in the database) may use it; a refusal is polite and audited. The organizer is
told who is reminded, by organization (issue 14). A secretary is offered what they can do
instead: the WeChat group notice and the invitation links of their branch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import BaseHandler, CommandHandler

from bot.common import (
    PRIVATE,
    Actor,
    Context,
    MenuCommand,
    Viewer,
    audit,
    in_transaction,
    join_list,
    reply,
    send_text,
    services,
    viewer,
)
from bot.report_callbacks import BranchTap, BranchView, encode
from bot.report_views import short_name
from jobs.digests import local_time
from jobs.runner import Enqueued, enqueue_manual, runner_of
from storage.db import Session
from storage.reports import org_names
from storage.rounds import branches_in_scope
from surveys.categories import Role
from surveys.i18n import t

MAX_NAMES = 60  # per organization in the reply; beyond this, 等N人

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
        detail: dict[str, object] = {"roles": list(who.roles)}
        if Role.SECRETARY.value in who.roles:
            detail["offered"] = "wechat_notice"
        await in_transaction(context, _record(update, who, "refused", detail))
        if Role.SECRETARY.value in who.roles and who.person_id is not None:
            await _offer_secretary(update, context, who)
            return
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
        head = t("jobs.remind.quiet", who.locale, count=enqueued.count, at=at)
        await _send_with_names(update, context, who, head, enqueued)
        return
    await _send_with_names(
        update, context, who, t("jobs.remind.sent", who.locale, count=enqueued.count), enqueued
    )


async def _send_with_names(
    update: Update, context: Context, who: Viewer, head: str, enqueued: Enqueued
) -> None:
    """The outcome line, then who is reminded by organization, then the secretaries."""
    locale = who.locale
    lines = [head, t("secretary.remind.who", locale, count=sum(map(len, enqueued.people.values())))]
    for org, names in enqueued.people.items():
        shown = join_list(names[:MAX_NAMES], locale)
        if len(names) > MAX_NAMES:
            shown += t("secretary.notice.more", locale, count=len(names))
        lines.append(t("secretary.remind.branch_line", locale, branch=org, names=shown))
    if enqueued.secretaries:
        names = join_list(enqueued.secretaries, locale)
        lines.append(t("secretary.remind.secretaries", locale, names=names))
    await send_text(update, context, "\n".join(lines))


async def _offer_secretary(update: Update, context: Context, who: Viewer) -> None:
    """Instead of a bare refusal: the notice and the links of each branch they lead."""
    assert who.person_id is not None
    person_id = who.person_id

    def work(session: Session) -> dict[int, str]:
        branches = branches_in_scope(session, person_id=person_id, role=Role.SECRETARY)
        return org_names(session=session, org_ids=branches)

    names = await in_transaction(context, work)
    rows = []
    for org_id, name in sorted(names.items(), key=lambda item: item[1]):
        for key, view in (
            ("secretary.button.notice", BranchView.NOTICE),
            ("secretary.button.invites", BranchView.INVITES),
        ):
            label = t(key, who.locale)
            if len(names) > 1:  # several branches: say which one each button is for
                label = t(
                    "secretary.button.branch", who.locale, label=label, branch=short_name(name)
                )
            rows.append(
                [InlineKeyboardButton(label, callback_data=encode(BranchTap(view, org_id)))]
            )
    text = t("secretary.remind.offer", who.locale, name=who.name)
    await send_text(
        update, context, text, reply_markup=InlineKeyboardMarkup(rows) if rows else None
    )
