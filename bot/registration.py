"""Registration (登记): binding a Telegram account to a person on the roster.

Three ways in, all ending in one transaction that writes the binding and its audit row:

* ``/start <token>`` from a personal invitation link (single use, expires);
* ``/start <token>`` from a branch link: an anonymous mass representative (群众代表) of
  that branch, capped at the branch's number of representatives;
* ``/start`` alone, then the "share my phone number" button: the number must be the
  sender's own and must stand on the roster.

Also here: a user who blocks the bot, or comes back after blocking it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime

from telegram import ChatMemberUpdated, InlineKeyboardMarkup, Update
from telegram.constants import ChatMemberStatus
from telegram.ext import BaseHandler, ChatMemberHandler, CommandHandler, MessageHandler, filters

from bot import answering
from bot.common import (
    PRIVATE,
    Actor,
    Context,
    MenuCommand,
    Viewer,
    audit,
    contact_keyboard,
    in_transaction,
    refresh_chat_menu,
    remove_keyboard,
    reply,
    role_names,
    send_text,
    services,
    viewer_in,
)
from storage.db import Session
from storage.registration import (
    BindingRaced,
    BindOutcome,
    BindResult,
    TelegramIdentity,
    bind_by_invitation,
    bind_by_phone,
    branch_capacity,
    organization_name,
    person_by_id,
    set_blocked,
)
from surveys.i18n import normalize_locale
from surveys.roster import normalize_phone

log = logging.getLogger(__name__)

COMMANDS = (MenuCommand("start", "command.start"),)

# Deep-link payloads are at most 64 characters of A-Z a-z 0-9 _ - (Telegram's rule).
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

REFUSAL_KEYS = {
    BindOutcome.ALREADY_BOUND: "registration.already_registered",
    BindOutcome.PERSON_TAKEN: "registration.person_taken",
    BindOutcome.UNKNOWN_TOKEN: "registration.token_unknown",
    BindOutcome.EXPIRED: "registration.token_expired",
    BindOutcome.USED: "registration.token_used",
    BindOutcome.BRANCH_FULL: "registration.branch_full",
    BindOutcome.UNKNOWN_PHONE: "registration.phone_unknown",
    BindOutcome.CONTACT_MISMATCH: "hardening.contact_mismatch",
}
# A used link names nobody (issue 10, item 4): whoever holds it learns nothing of its owner.
LINK_REFUSAL_KEYS = {**REFUSAL_KEYS, BindOutcome.PERSON_TAKEN: "hardening.link_taken"}

PENDING_LINK_KEY = "ceping.pending_link"
"""user_data key of a privileged person's link waiting for the matching contact."""


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The handlers of this module, in the order they must be registered."""
    return [
        CommandHandler("start", start, filters=PRIVATE),
        MessageHandler(PRIVATE & filters.CONTACT, contact_shared),
        ChatMemberHandler(membership_changed, ChatMemberHandler.MY_CHAT_MEMBER),
    ]


# --- Handlers -----------------------------------------------------------------------------


async def start(update: Update, context: Context) -> None:
    """/start: register by the link's token, or greet and offer the phone button."""
    if context.args:
        await start_with_token(update, context, context.args[0])
    else:
        await start_plain(update, context)


async def start_plain(update: Update, context: Context) -> None:
    """/start without a token: welcome back a registered user, or ask for the phone number."""
    who = await in_transaction(context, lambda session: viewer_in(session, update))
    if who.registered:
        await reply(update, context, "registration.welcome_back", locale=who.locale, name=who.name)
        await refresh_menu(update, context, who)
        await show_todo(update, context, who)
        return
    await reply(
        update,
        context,
        "registration.welcome",
        locale=who.locale,
        reply_markup=contact_keyboard(who.locale),
    )


async def start_with_token(update: Update, context: Context, token: str) -> None:
    """/start <token>: bind by a personal invitation or a branch link."""
    identity = identity_of(update)
    now = services(context).now()

    def bind(session: Session) -> BindResult:
        if not TOKEN_PATTERN.match(token):
            return BindResult(BindOutcome.UNKNOWN_TOKEN)
        return bind_by_invitation(session, token=token, who=identity, now=now)

    result = await bind_with_retry(update, context, bind, action="register.link")
    user_data = context.user_data if context.user_data is not None else {}
    user_data.pop(PENDING_LINK_KEY, None)
    if result.outcome is BindOutcome.NEEDS_CONTACT:
        # The link alone is not enough for 组织员, 工作组 and 书记: ask for the contact.
        user_data[PENDING_LINK_KEY] = token
        locale = (await in_transaction(context, lambda session: viewer_in(session, update))).locale
        await reply(
            update,
            context,
            "hardening.link_needs_contact",
            locale=locale,
            reply_markup=contact_keyboard(locale),
        )
        return
    await answer_binding(update, context, result, token=token)


async def contact_shared(update: Update, context: Context) -> None:
    """A shared contact: bind when it is the sender's own number and stands on the roster."""
    message = update.effective_message
    user = update.effective_user
    assert message is not None and message.contact is not None and user is not None
    contact = message.contact
    if contact.user_id != user.id:
        await refuse_foreign_contact(update, context)
        return
    phone = normalize_phone(contact.phone_number)
    identity = identity_of(update)
    user_data = context.user_data if context.user_data is not None else {}
    token = user_data.pop(PENDING_LINK_KEY, None)
    if token is not None:
        await bind_link_with_contact(update, context, token, phone)
        return

    def bind(session: Session) -> BindResult:
        if phone is None:  # not a mainland mobile number, so not on any roster
            return BindResult(BindOutcome.UNKNOWN_PHONE)
        return bind_by_phone(session, phone=phone, who=identity)

    result = await bind_with_retry(update, context, bind, action="register.contact")
    await answer_binding(update, context, result, phone=phone or contact.phone_number)


async def bind_link_with_contact(
    update: Update, context: Context, token: str, phone: str | None
) -> None:
    """A privileged person's link, now with the sender's own contact: bind if it matches."""
    identity, now = identity_of(update), services(context).now()

    def bind(session: Session) -> BindResult:
        return bind_by_invitation(session, token=token, who=identity, now=now, phone=phone or "")

    result = await bind_with_retry(update, context, bind, action="register.link_contact")
    await answer_binding(update, context, result, token=token, phone=phone or "-")


async def membership_changed(update: Update, context: Context) -> None:
    """The user blocked the bot (record it) or came back (clear it and greet)."""
    change = update.my_chat_member
    if change is None or change.chat.type != "private":
        return
    blocked = change.new_chat_member.status == ChatMemberStatus.BANNED
    if not blocked and not returned(change):
        return
    now = services(context).now()
    user_id = change.from_user.id

    def record(session: Session) -> Viewer | None:
        account = set_blocked(session, telegram_user_id=user_id, now=now, blocked=blocked)
        if account is None:
            return None
        actor = Actor(user_id, account.person_id)
        action = "bot.blocked" if blocked else "bot.unblocked"
        audit(session, actor=actor, action=action, at=now)
        return viewer_in(session, update)

    who = await in_transaction(context, record)
    if who is not None and not blocked:
        await reply(update, context, "registration.welcome_back", locale=who.locale, name=who.name)
        await show_todo(update, context, who)


# --- Steps --------------------------------------------------------------------------------


def returned(change: ChatMemberUpdated) -> bool:
    """Whether this membership change is a user un-blocking the bot."""
    was_blocked = change.old_chat_member.status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT)
    return was_blocked and change.new_chat_member.status == ChatMemberStatus.MEMBER


def identity_of(update: Update) -> TelegramIdentity:
    """The Telegram user and private chat of an update, with their catalog locale."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    return TelegramIdentity(user.id, chat.id, normalize_locale(user.language_code))


async def bind_with_retry(
    update: Update, context: Context, bind: Callable[[Session], BindResult], *, action: str
) -> BindResult:
    """Bind and audit in one transaction; after a lost race, once more to see the winner."""

    now = services(context).now()

    def work(session: Session) -> BindResult:
        result = bind(session)
        record_binding(session, update, result, action=action, at=now)
        return result

    try:
        return await in_transaction(context, work)
    except BindingRaced:
        log.info("registration raced with another binding; reading the outcome again")
        return await in_transaction(context, work)


def record_binding(
    session: Session, update: Update, result: BindResult, *, action: str, at: datetime
) -> None:
    """The audit row of a binding attempt, in the same transaction."""
    target = f"person:{result.person_id}" if result.person_id is not None else None
    if target is None and result.org_id is not None:
        target = f"org:{result.org_id}"
    audit(
        session,
        actor=Actor.of(update, result.person_id if result.bound else None),
        action=action,
        target=target,
        outcome="ok" if result.bound else "refused",
        detail={"outcome": result.outcome.value, "via": result.via},
        at=at,
    )


async def answer_binding(
    update: Update, context: Context, result: BindResult, *, token: str = "", phone: str = ""
) -> None:
    """Tell the user what became of their registration attempt."""
    snapshot = await in_transaction(
        context, lambda session: reply_facts(session, update, result, token=token)
    )
    who, branch, capacity = snapshot
    if result.outcome is BindOutcome.BOUND:
        await confirm_binding(update, context, who)
    elif result.outcome is BindOutcome.SAME_PERSON:
        await reply(update, context, "registration.welcome_back", locale=who.locale, name=who.name)
        await show_todo(update, context, who)
    else:
        keys = LINK_REFUSAL_KEYS if token else REFUSAL_KEYS
        await reply(
            update,
            context,
            keys.get(result.outcome, "registration.token_unknown"),
            locale=who.locale,
            reply_markup=remove_keyboard() if phone else None,
            name=who.name,
            branch=branch,
            count=capacity,
            phone=phone,
        )


def reply_facts(
    session: Session, update: Update, result: BindResult, *, token: str
) -> tuple[Viewer, str, int]:
    """What the reply needs: who the asker is now, the branch, and a branch link's capacity."""
    who = viewer_in(session, update)
    if result.outcome is BindOutcome.PERSON_TAKEN:
        # The name of the person the token or number belongs to, not the asker's.
        person = person_by_id(session, person_id=result.person_id)
        who = Viewer(who.telegram_user_id, who.locale, name=person.name if person else "")
    branch = organization_name(session, org_id=result.org_id)
    capacity = branch_capacity(session, token=token) if token else 0
    return who, branch, capacity


async def confirm_binding(update: Update, context: Context, who: Viewer) -> None:
    """Say who the account now is, drop the phone keyboard, then show what there is to do."""
    key = "registration.bound_mass" if who.anonymous else "registration.bound"
    await reply(
        update,
        context,
        key,
        locale=who.locale,
        reply_markup=remove_keyboard(),
        name=who.name,
        branch=who.branch,
        roles=role_names(who.roles, who.locale),
    )
    await refresh_menu(update, context, who)
    await show_todo(update, context, who)


async def refresh_menu(update: Update, context: Context, who: Viewer) -> None:
    """Give this chat the command menu of the person's roles."""
    chat = update.effective_chat
    if chat is not None:
        await refresh_chat_menu(context, chat_id=chat.id, roles=who.roles, locale=who.locale)


async def show_todo(update: Update, context: Context, who: Viewer) -> None:
    """What this person has to answer now, with a button for each survey."""
    if who.person_id is None:
        return
    person_id, now, zone = who.person_id, services(context).now(), services(context).settings.zone

    def read(session: Session) -> tuple[str, InlineKeyboardMarkup | None]:
        return answering.todo_text_and_keyboard(session, person_id, who.locale, now, zone)

    text, keyboard = await in_transaction(context, read)
    await send_text(update, context, text, reply_markup=keyboard)


async def refuse_foreign_contact(update: Update, context: Context) -> None:
    """Someone shared another person's contact card: only one's own number registers."""
    now = services(context).now()

    def record(session: Session) -> str:
        who = viewer_in(session, update)
        audit(
            session,
            actor=Actor.of(update, who.person_id),
            action="register.contact",
            outcome="refused",
            detail={"outcome": "not_own_contact"},
            at=now,
        )
        return who.locale

    locale = await in_transaction(context, record)
    await reply(
        update,
        context,
        "registration.contact_not_own",
        locale=locale,
        reply_markup=contact_keyboard(locale),
    )
