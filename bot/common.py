"""Helpers every bot module may use: who is asking, in which language, replies, menus, audit.

Database work in a handler goes through :func:`in_transaction`, which runs a plain
function ``work(session)`` in a worker thread inside one short transaction. Handlers
then never block the event loop on the database, and with ``concurrent_updates`` a
meeting of two thousand people is not answered one at a time. The answering taps'
transactions, shorter than the hand-over to a thread, run on the loop when they need not
wait (``quick=True``).

Commands shown in Telegram's menu and in /help are declared as :class:`MenuCommand`
tuples named ``COMMANDS`` in each bot module (``bot.registration``, ``bot.answering``,
``bot.reports``); the description is a catalog key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop, CallbackContext, filters

from storage import audit as audit_log
from storage.db import Session, WouldWait, quick_transaction, transaction, wait_for_turn
from storage.models import AuditLog, TelegramAccount
from storage.registration import find_account, organization_name, person_by_id, roles_of
from storage.runtime import SERVICES_KEY, Services
from storage.types import utcnow
from storage.widths import TextTooLong
from surveys.i18n import normalize_locale, t
from surveys.text import split_message

T = TypeVar("T")
Context = CallbackContext[Any, Any, Any, Any]

QUICK_WAIT_SECONDS = 1.0
"""How long a quick transaction waits on the loop for a SQLite writer of this process (a
fold) to hand the turn on before it goes to wait on a worker thread as any other."""

PRIVATE = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE
"""New messages in a private chat (edits are not answered twice)."""

LANGUAGE_CALLBACK_PREFIX = "lang:"
LANGUAGES = ("zh_CN", "en")
COMMANDS_KEY = "ceping.commands"
"""bot_data key of every module's MenuCommands, stored when the Application is built."""

log = logging.getLogger(__name__)


def services(context: Context) -> Services:
    """The services stored on the Application when it was built (storage.runtime)."""
    return context.application.bot_data[SERVICES_KEY]  # type: ignore[no-any-return]


# --- Database and identity ----------------------------------------------------------------


async def in_transaction(
    context: Context, work: Callable[[Session], T], *, quick: bool = False
) -> T:
    """Run ``work(session)`` in one transaction on a worker thread and return its result.

    ``quick``: for a tap's or a typed answer's short transaction, which runs right here on
    the event loop's thread when it need not wait for a lock
    (:func:`storage.db.quick_transaction`: a SQLite file or PostgreSQL); else on a worker
    thread as any other. Where a SQLite writer of this process holds the turn, it waits for
    its turn in the writers' queue without holding the loop and tries here again (up to
    ``QUICK_WAIT_SECONDS``). ``work`` must then only touch the database, as it may run
    several times.
    """
    engine = services(context).engine

    def run() -> T:
        with transaction(engine) as session:
            return work(session)

    try:
        if quick:
            deadline, kept = time.monotonic() + QUICK_WAIT_SECONDS, None
            while True:
                try:
                    return quick_transaction(engine, work, kept)
                except WouldWait as would_wait:
                    # A turn of this process's: queue for it and try here again.
                    left = deadline - time.monotonic()
                    kept = await wait_for_turn(engine, would_wait, left) if left > 0 else None
                    if kept is None:
                        break  # anything else would wait: wait on a thread
        return await asyncio.to_thread(run)
    except TextTooLong as too_long:
        await refuse_long_text(context, too_long)
        raise ApplicationHandlerStop from None


async def refuse_long_text(context: Context, too_long: TextTooLong) -> None:
    """Typed text longer than its column: nothing was written; say so politely.

    The width guard (storage.widths) refused the flush, so the transaction rolled back;
    the handler stops here, on SQLite as on PostgreSQL (issue 10, item 7).
    """
    log.info("refused a text longer than %s.%s", too_long.table, too_long.column)
    chat_id = getattr(context, "_chat_id", None)  # PTB keeps the update's chat here
    if chat_id is None:
        return
    user_id = getattr(context, "_user_id", None)
    locale = await asyncio.to_thread(_locale_of_user, context, user_id)
    text = t("hardening.text_too_long", locale, length=too_long.length, limit=too_long.limit)
    await context.bot.send_message(chat_id=chat_id, text=text)


def _locale_of_user(context: Context, user_id: int | None) -> str:
    """The reply language of a Telegram user, read in a transaction of its own."""
    if user_id is None:
        return normalize_locale(None)
    with transaction(services(context).engine) as session:
        account = find_account(session, telegram_user_id=user_id)
        return account.language if account is not None and account.language else "zh_CN"


def locale_of(update: Update | None, account: TelegramAccount | None) -> str:
    """The reply language: the account's choice, else the language of the Telegram client."""
    if account is not None and account.language:
        return account.language
    user = update.effective_user if update is not None else None
    return normalize_locale(user.language_code if user is not None else None)


@dataclass(frozen=True)
class Viewer:
    """The person behind an update, as far as the bot knows them (detached from the session)."""

    telegram_user_id: int
    locale: str
    person_id: int | None = None
    name: str = ""
    org_id: int | None = None
    branch: str = ""
    roles: tuple[str, ...] = ()
    anonymous: bool = False

    @property
    def registered(self) -> bool:
        """Whether this Telegram account is bound to a person."""
        return self.person_id is not None


def viewer_in(session: Session, update: Update) -> Viewer:
    """Who sent this update: their person, branch, roles and reply language."""
    user = update.effective_user
    assert user is not None, "updates without a user are filtered out before handlers"
    account = find_account(session, telegram_user_id=user.id)
    locale = locale_of(update, account)
    person = person_by_id(session, person_id=account.person_id) if account is not None else None
    if person is None or person.id is None:
        return Viewer(telegram_user_id=user.id, locale=locale)
    return Viewer(
        telegram_user_id=user.id,
        locale=locale,
        person_id=person.id,
        name=person.name,
        org_id=person.org_id,
        branch=organization_name(session, org_id=person.org_id),
        roles=tuple(roles_of(session, person_id=person.id)),
        anonymous=person.anonymous,
    )


async def viewer(update: Update, context: Context) -> Viewer:
    """Who sent this update (one short read transaction)."""
    return await in_transaction(context, lambda session: viewer_in(session, update))


# --- Replies ------------------------------------------------------------------------------


ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


async def reply(
    update: Update,
    context: Context,
    key: str,
    *,
    locale: str | None = None,
    reply_markup: ReplyMarkup | None = None,
    **kwargs: object,
) -> Message:
    """Send the catalog text ``key`` to the chat of this update, in the asker's language."""
    if locale is None:
        locale = (await viewer(update, context)).locale
    return await send_text(update, context, t(key, locale, **kwargs), reply_markup=reply_markup)


async def send_text(
    update: Update, context: Context, text: str, *, reply_markup: ReplyMarkup | None = None
) -> Message:
    """Send an already translated text to the chat of this update.

    Someone not registered gets the phone button with every reply that brings no keyboard
    of its own: whatever they typed or followed, the way forward is on screen (issue 14).
    A text longer than Telegram's 4,096 characters (a list of 400 names) goes as several
    messages cut on line boundaries (issue 10, item 6); the keyboard rides on the last one,
    which is returned.
    """
    chat = update.effective_chat
    assert chat is not None, "replies go to the chat the update came from"
    if reply_markup is None and chat.type == "private" and update.effective_user is not None:
        who = await viewer(update, context)
        if not who.registered:
            reply_markup = contact_keyboard(who.locale)
    return await send_long(context, chat.id, text, reply_markup=reply_markup)


async def send_long(
    context: Context,
    chat_id: int,
    text: str,
    *,
    reply_markup: ReplyMarkup | None = None,
    parse_mode: str | None = None,
) -> Message:
    """Send ``text`` as one message, or as several within Telegram's limit, cut on lines.

    The one sending rule for every reply built from a list; the keyboard goes on the last
    part, and the last message is returned.
    """
    *first, last = split_message(text) or [text]
    for part in first:
        await context.bot.send_message(chat_id=chat_id, text=part, parse_mode=parse_mode)
    return await context.bot.send_message(
        chat_id=chat_id, text=last, reply_markup=reply_markup, parse_mode=parse_mode
    )


def join_list(items: Iterable[str], locale: str) -> str:
    """Items joined the way the language lists them (、 in Chinese, commas in English)."""
    return t("bot.list_separator", locale).join(items)


# Most responsible first: a secretary reads "书记、班子成员、党员".
ROLE_DISPLAY_ORDER = ("organizer", "secretary", "committee", "inspector", "member", "mass")


def role_names(roles: Iterable[str], locale: str) -> str:
    """Roles as display names in one line, most responsible first, or the catalog's 'none'."""
    ordered = sorted(
        set(roles), key=lambda r: ROLE_DISPLAY_ORDER.index(r) if r in ROLE_DISPLAY_ORDER else 99
    )
    names = [t(f"role.{role}", locale) for role in ordered]
    return join_list(names, locale) if names else t("common.none", locale)


# --- Keyboards and menus ------------------------------------------------------------------


@dataclass(frozen=True)
class MenuCommand:
    """A command in Telegram's menu and in /help: for everyone, or for some roles only."""

    name: str
    description_key: str
    roles: frozenset[str] | None = None  # None: everyone, registered or not

    def visible_to(self, roles: Iterable[str], *, registered: bool) -> bool:
        """Whether someone with these roles sees this command."""
        if self.roles is None:
            return True
        return registered and bool(self.roles & set(roles))


def visible_commands(
    commands: Sequence[MenuCommand], roles: Iterable[str], *, registered: bool
) -> list[MenuCommand]:
    """The commands someone may use, without duplicates, in declaration order."""
    held = list(roles)
    seen: set[str] = set()
    visible: list[MenuCommand] = []
    for command in commands:
        if command.name not in seen and command.visible_to(held, registered=registered):
            seen.add(command.name)
            visible.append(command)
    return visible


def bot_commands(commands: Sequence[MenuCommand], locale: str) -> list[BotCommand]:
    """Telegram's menu entries for these commands in one language."""
    return [BotCommand(c.name, t(c.description_key, locale)) for c in commands]


def all_commands(context: Context) -> Sequence[MenuCommand]:
    """Every command of every bot module, in menu order."""
    return context.application.bot_data.get(COMMANDS_KEY, ())


async def refresh_chat_menu(
    context: Context, *, chat_id: int, roles: Iterable[str], locale: str
) -> None:
    """Give someone whose roles have extra commands their own menu (others keep the default)."""
    commands = all_commands(context)
    mine = visible_commands(commands, roles, registered=True)
    if len(mine) == len(visible_commands(commands, (), registered=False)):
        return
    try:
        await context.bot.set_my_commands(
            bot_commands(mine, locale), scope=BotCommandScopeChat(chat_id)
        )
    except TelegramError as exc:
        # The menu is a convenience: /help still lists the commands.
        log.warning("could not set the command menu of chat %s: %s", chat_id, exc)


def help_text(commands: Sequence[MenuCommand], locale: str) -> str:
    """The /help text: one line per command."""
    lines = [t("help.header", locale)]
    lines += [
        t("help.line", locale, command=c.name, description=t(c.description_key, locale))
        for c in commands
    ]
    return "\n".join(lines)


def contact_keyboard(locale: str) -> ReplyKeyboardMarkup:
    """One big button that shares the user's own phone number."""
    button = KeyboardButton(t("registration.share_phone_button", locale), request_contact=True)
    return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)


def remove_keyboard() -> ReplyKeyboardRemove:
    """Take away a reply keyboard shown earlier (e.g. the phone button)."""
    return ReplyKeyboardRemove()


def language_keyboard() -> InlineKeyboardMarkup:
    """Two buttons: 简体中文 / English (each in its own language)."""
    buttons = [
        InlineKeyboardButton(t("lang.name", code), callback_data=LANGUAGE_CALLBACK_PREFIX + code)
        for code in LANGUAGES
    ]
    return InlineKeyboardMarkup([buttons])


# --- Audit --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who did something: the Telegram user and, once registered, their person."""

    telegram_user_id: int | None
    person_id: int | None = None

    @classmethod
    def of(cls, update: Update, person_id: int | None = None) -> Actor:
        """The sender of an update."""
        user = update.effective_user
        return cls(user.id if user is not None else None, person_id)


def audit(
    session: Session,
    *,
    actor: Actor,
    action: str,
    target: str | None = None,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditLog:
    """Add an audit row to the caller's transaction ('ok', 'refused' or 'error').

    Pass ``at=services(context).now()`` so the row follows the bot's (injectable) clock.
    """
    return audit_log.record(
        session=session,
        action=action,
        at=at or utcnow(),
        actor_person_id=actor.person_id,
        actor_telegram_id=actor.telegram_user_id,
        target=target,
        outcome=outcome,
        detail=detail,
    )
