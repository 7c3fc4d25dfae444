"""Answering instruments one question at a time, edited in place (问卷作答).

Every tap and every text runs one short transaction that (1) locks the assignment,
(2) checks everything against the database — whose assignment, submitted or not, the
round and phase window, the draft's revision, position and stage — and (3) saves at once.
Only then does the bot answer the callback and edit the message. No handler keeps state
in memory: the Draft row says what the next tap or text means, so a restart or a second
bot process on the same database changes nothing for the person answering.

Satisfaction answers are anonymous (see the storage.models docstring): they live only in
the Draft until ``storage.responses.submit`` turns them into counters; this module never
writes them anywhere else and never logs them.

This module holds the handlers and shows outcomes; a step's loading and checking is
``bot.answer_state``, what a tap does ``bot.answer_taps``, what a text means
``bot.answer_text``, and their queries ``storage.answering``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.answer_lists import todo_view
from bot.answer_state import (
    Outcome,
    Refusal,
    Request,
    Target,
    forged,
    load,
    refuse_unless_answerable,
    todo_entries,
)
from bot.answer_taps import apply_tap
from bot.answer_text import answer_text
from bot.callbacks import BadCallback, decode
from bot.common import (
    PRIVATE,
    Actor,
    Context,
    MenuCommand,
    audit,
    contact_keyboard,
    in_transaction,
    remove_keyboard,
    send_text,
    services,
)
from bot.survey_views import View
from storage import answering as store
from storage.ballots import FoldRequest, queue_fold, take_fold
from storage.db import Session
from storage.models import ROLES
from storage.responses import AlreadySubmitted, StaleDraft, update_draft_view
from storage.settings import settings as process_settings
from surveys.i18n import t

COMMANDS = (MenuCommand("surveys", "answering.command.surveys", roles=frozenset(ROLES)),)

CALLBACK_PATTERN = r"^[asl]:"
"""Callback data this module owns (shapes in bot.callbacks); anything else is not ours."""


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The handlers of this module, in the order they must be registered."""
    return [
        CommandHandler("surveys", show_surveys, filters=PRIVATE),
        CallbackQueryHandler(on_tap, pattern=CALLBACK_PATTERN),
        MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, on_text),
    ]


def fallback_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """To register after every module's handlers: taps on buttons no module drew."""
    return [CallbackQueryHandler(on_unknown_tap)]


def todo_text_and_keyboard(
    session: Session, person_id: int, locale: str, now: datetime, zone: ZoneInfo | None = None
) -> tuple[str, InlineKeyboardMarkup | None]:
    """What this person still has to answer, with deadlines and progress, and a button each."""
    zone = zone or process_settings().zone
    view = todo_view(todo_entries(session, person_id, locale, now), locale, zone)
    return view.text, view.keyboard


async def show_surveys(update: Update, context: Context) -> None:
    """/surveys: the to-do list of the open rounds."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return

    request = Request.of(update, context, user.id)

    def read(session: Session) -> View:
        asker = request.asker_in(session)
        if asker.person_id is None:
            # Not registered: the one way forward is the phone button (issue 14).
            keyboard = contact_keyboard(asker.locale)
            return View(t("answering.not_registered", asker.locale), keyboard)
        text, keyboard = todo_text_and_keyboard(
            session, asker.person_id, asker.locale, asker.now, asker.zone
        )
        return View(text, keyboard)

    view = await in_transaction(context, read)
    await context.bot.send_message(chat.id, view.text, reply_markup=view.keyboard)


async def cancel(update: Update, context: Context) -> None:
    """/cancel when no other step waits: say nothing was under way, or that a survey is kept.

    Nothing is thrown away: a survey half answered stays as it is, and /surveys resumes it.
    """
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return

    request = Request.of(update, context, user.id)

    def read(session: Session) -> tuple[str, bool]:
        asker = request.asker_in(session)
        busy = store.active_assignment(session=session, telegram_user_id=user.id) is not None
        return asker.locale, busy

    locale, busy = await in_transaction(context, read)
    key = "answering.cancel.kept" if busy else "cancel.nothing"
    await send_text(update, context, t(key, locale), reply_markup=remove_keyboard())


# --- Taps -------------------------------------------------------------------------------------


async def on_tap(update: Update, context: Context) -> None:
    """A button of ours: check it against the database, apply it, then show the result."""
    query = update.callback_query
    if query is None:
        return
    message = query.message if isinstance(query.message, Message) else None
    user_id = query.from_user.id

    request = Request.of(update, context, user_id)

    def step(session: Session) -> Outcome:
        try:
            return apply_tap(session, request, decode(query.data), message)
        except BadCallback as error:
            refusal = forged(request.asker_in(session), why=str(error))
        except Refusal as caught:
            refusal = caught
        if refusal.forged_by is not None:
            actor = Actor(user_id, refusal.forged_by.person_id)
            # Whatever the step touched before spotting the forgery is undone: only the
            # audit row is written.
            session.rollback()
            _audit_forgery(session, actor, query.data, refusal.detail)
        return refusal.outcome

    def step_leaving_the_fold(session: Session) -> tuple[Outcome, FoldRequest | None]:
        # A submission's fold waits until the person has their screen (see below).
        return step(session), take_fold(session)

    outcome, fold = await in_transaction(context, step_leaving_the_fold, quick=True)
    try:
        await _show(context, outcome, query=query, chat_id=message.chat_id if message else user_id)
    finally:
        if fold is not None:
            # Its own transaction, after the thanks screen: at a meeting's end every
            # branch's box fills at once, and the taps waited for the folds queued on the
            # write lock. The update counts as handled only once the fold is done.
            engine = services(context).engine
            await asyncio.wrap_future(queue_fold(engine, fold))


async def on_unknown_tap(update: Update, context: Context) -> None:
    """A tap whose data no module understands: garbage or forged. Alert and audit."""
    query = update.callback_query
    if query is None:
        return

    request = Request.of(update, context, query.from_user.id)

    def record(session: Session) -> str:
        asker = request.asker_in(session)
        actor = Actor(asker.telegram_user_id, asker.person_id)
        _audit_forgery(session, actor, query.data, {"why": "unknown shape"})
        return asker.locale

    locale = await in_transaction(context, record)
    await query.answer(t("answering.forged", locale), show_alert=True)


def _audit_forgery(
    session: Session, actor: Actor, data: str | None, detail: dict[str, Any]
) -> None:
    """A refused tap in the audit log (who, which data, why)."""
    audit(
        session,
        actor=actor,
        action="answer.callback",
        target=_without_argument(data or "")[:200],
        outcome="refused",
        detail={key: str(value) for key, value in detail.items()},
    )


def _without_argument(data: str) -> str:
    """Callback data without a survey tap's argument: a refused tap may still be a choice."""
    return data.rsplit(":", 1)[0] if data.startswith("a:") and data.count(":") >= 5 else data


# --- Text -------------------------------------------------------------------------------------


async def on_text(update: Update, context: Context) -> None:
    """A text message: the answer the draft's current screen waits for, or a re-ask."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or message.text is None:
        return
    text = message.text

    request = Request.of(update, context, user.id)

    def step(session: Session) -> Outcome:
        assignment_id = store.active_assignment(session=session, telegram_user_id=user.id)
        if assignment_id is None:
            asker = request.asker_in(session)
            if asker.account is None:
                # Not registered: the one way forward is the phone button (issue 14).
                refusal = t("answering.not_registered", asker.locale)
                view = View(refusal, contact_keyboard(asker.locale))
            else:
                view = View(t("answering.no_text_expected", asker.locale))
            return Outcome(view=view, target=Target.NEW)
        try:
            loaded = load(session, request, assignment_id)
            refuse_unless_answerable(loaded)
        except Refusal as refusal:
            return _as_message(refusal.outcome)
        return answer_text(session, loaded, text)

    outcome = await in_transaction(context, step, quick=True)
    await _show(context, outcome, query=None, chat_id=message.chat_id)


def _as_message(outcome: Outcome) -> Outcome:
    """A refusal meant for a tap, said as a message instead (there is no tap to answer)."""
    view = outcome.screen() or View(outcome.toast or "")
    return Outcome(view=view, target=Target.NEW)


# --- Showing ----------------------------------------------------------------------------------


async def _show(
    context: Context, outcome: Outcome, *, query: CallbackQuery | None, chat_id: int
) -> None:
    """Answer the tap and put the screen where the outcome says: the whole Bot API work."""
    calls = []
    if query is not None:
        calls.append(query.answer(_fit_toast(outcome.toast), show_alert=outcome.alert))
    view = outcome.screen()  # a survey screen is drawn here, after its transaction
    if view is not None and outcome.target is Target.TAPPED and query is not None:
        calls.append(_edit(query, view))
    await asyncio.gather(*calls)
    if view is not None and (outcome.target is Target.NEW or query is None):
        sent = await context.bot.send_message(chat_id, view.text, reply_markup=view.keyboard)
        if outcome.record is not None:
            await _record_message(context, outcome.record, sent)
    for chat, message_id in outcome.strip:
        await _ignore_unchanged(
            context.bot.edit_message_reply_markup(chat, message_id, reply_markup=None)
        )


MAX_TOAST = 200
"""Telegram's limit on the text of a callback answer."""


def _fit_toast(text: str | None) -> str | None:
    """A callback answer cut to Telegram's 200 characters (a long list of numbers can be)."""
    if text is None or len(text) <= MAX_TOAST:
        return text
    return text[: MAX_TOAST - 1] + "…"


async def _edit(query: CallbackQuery, view: View) -> None:
    """Edit the tapped message in place (a message already showing this screen is fine)."""
    if not isinstance(query.message, Message):
        return
    await _ignore_unchanged(query.message.edit_text(view.text, reply_markup=view.keyboard))


async def _ignore_unchanged(call: Any) -> None:
    """An edit that changes nothing, or of a message gone meanwhile, is not an error here."""
    try:
        await call
    except BadRequest as error:
        reason = str(error).lower()
        if "not modified" not in reason and "not found" not in reason:
            raise


async def _record_message(context: Context, record: tuple[int, int], sent: Message) -> None:
    """Remember the new message as the survey's screen (unless someone moved on meanwhile)."""
    assignment_id, revision = record

    def remember(session: Session) -> None:
        try:
            update_draft_view(
                session,
                assignment_id=assignment_id,
                chat_id=sent.chat_id,
                message_id=sent.message_id,
                expected_revision=revision,
            )
        except (StaleDraft, AlreadySubmitted, LookupError):
            # The draft moved on meanwhile: the message's buttons are simply stale now.
            session.rollback()

    await in_transaction(context, remember)
