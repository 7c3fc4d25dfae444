"""/lang: choose simplified Chinese or English for every reply.

The choice is kept on the registered account; someone not registered yet is answered in
the language of their Telegram app until they register.
"""

from __future__ import annotations

import re

from telegram import Update
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler

from bot.common import (
    LANGUAGE_CALLBACK_PREFIX,
    LANGUAGES,
    PRIVATE,
    Actor,
    Context,
    MenuCommand,
    Viewer,
    audit,
    contact_keyboard,
    in_transaction,
    language_keyboard,
    refresh_chat_menu,
    reply,
    services,
    viewer_in,
)
from storage.db import Session
from storage.registration import set_language
from surveys.i18n import t

COMMANDS = (MenuCommand("lang", "command.lang"),)

CHOICE_PATTERN = re.compile(
    "^" + re.escape(LANGUAGE_CALLBACK_PREFIX) + "(" + "|".join(LANGUAGES) + ")$"
)


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The handlers of this module, in the order they must be registered."""
    return [
        CommandHandler("lang", ask_language, filters=PRIVATE),
        CallbackQueryHandler(language_chosen, pattern=CHOICE_PATTERN),
    ]


async def ask_language(update: Update, context: Context) -> None:
    """/lang: show the two language buttons."""
    await reply(update, context, "lang.choose", reply_markup=language_keyboard())


async def language_chosen(update: Update, context: Context) -> None:
    """A language button: store the choice (registered accounts) and confirm in that language."""
    query = update.callback_query
    assert query is not None and query.data is not None
    locale = query.data.removeprefix(LANGUAGE_CALLBACK_PREFIX)
    now = services(context).now()

    def store(session: Session) -> Viewer:
        who = viewer_in(session, update)
        if set_language(session, telegram_user_id=who.telegram_user_id, locale=locale):
            audit(
                session,
                actor=Actor.of(update, who.person_id),
                action="lang.set",
                detail={"locale": locale},
                at=now,
            )
        return who

    who = await in_transaction(context, store)
    await query.answer()
    key = "lang.chosen" if who.registered else "lang.chosen_unregistered"
    await query.edit_message_text(t(key, locale))
    if not who.registered and query.message is not None:
        # An edit cannot carry the phone button: say how to register, with it, in the new language.
        await context.bot.send_message(
            query.message.chat.id,
            t("registration.welcome", locale),
            reply_markup=contact_keyboard(locale),
        )
    if who.registered and query.message is not None:
        await refresh_chat_menu(
            context, chat_id=query.message.chat.id, roles=who.roles, locale=locale
        )
