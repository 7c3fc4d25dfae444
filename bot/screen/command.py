"""/screen BRANCH, and the Mini App button that /tally and /publish carry.

/screen answers a signed, read-only projector link for one branch the asker may see (the
same scope as /tally), valid for the meeting (``CEPING_SCREEN_HOURS``, 3 h by default), and
a button that opens the same screen inside Telegram.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from urllib.parse import urlencode

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update, WebAppInfo
from telegram.constants import ParseMode
from telegram.ext import BaseHandler, CommandHandler

from bot.common import (
    PRIVATE,
    Actor,
    Context,
    MenuCommand,
    Viewer,
    audit,
    in_transaction,
    services,
    viewer_in,
)
from bot.screen.auth import Grant, sign_grant
from bot.screen.settings import screen_settings
from storage.db import Session
from storage.rounds import current_round
from storage.scope import scope_for
from storage.screen import branch_link_token, visible_branches
from surveys.i18n import t

COMMANDS = (
    MenuCommand(
        "screen", "screen.command", roles=frozenset({"organizer", "secretary", "inspector"})
    ),
)


def mini_app_button(org_id: int | None, locale: str) -> InlineKeyboardButton | None:
    """The button that opens the screen as a Mini App (None while no public URL is set).

    For /tally and /publish: ``org_id`` is the branch shown, or None to let the page offer
    the viewer's branches.
    """
    base = screen_settings().base_url
    if base is None:
        return None
    url = f"{base}/screen/" + (f"?{urlencode({'b': org_id})}" if org_id is not None else "")
    return InlineKeyboardButton(t("screen.open_button", locale), web_app=WebAppInfo(url))


def projector_url(base: str, token: str, locale: str) -> str:
    """The read-only link for a projector's browser."""
    return f"{base}/screen/?{urlencode({'t': token, 'lang': locale})}"


@dataclass(frozen=True)
class _Reply:
    text: str
    markup: InlineKeyboardMarkup | None = None


def _match(names: dict[int, str], query: str) -> list[int]:
    """Exact name, else every name containing the query (ignoring case and spaces)."""
    wanted = "".join(query.split()).lower()
    exact = [org_id for org_id, name in names.items() if name.lower() == wanted]
    if exact:
        return exact
    return sorted(
        (o for o, name in names.items() if wanted in "".join(name.split()).lower()),
        key=lambda o: names[o],
    )


def _refused(session: Session, update: Update, who: Viewer, key: str) -> _Reply:
    """A refusal, on record like every report command's; it names no branch."""
    audit(
        session,
        actor=Actor.of(update, who.person_id),
        action="screen",
        outcome="refused",
        detail={"roles": list(who.roles)},
    )
    return _Reply(t(key, who.locale))


def screen_answer(
    session: Session,
    update: Update,
    query: str,
    *,
    now: datetime,
    zone: tzinfo,
    bot_token: str,
    days: int,
) -> _Reply:
    """The projector link for the named branch (or the viewer's only one), or why not."""
    who = viewer_in(session, update)
    locale = who.locale
    settings = screen_settings()
    if settings.base_url is None:
        return _Reply(t("screen.not_configured", locale))
    if who.person_id is None:
        return _Reply(t("screen.not_registered", locale))
    round_ = current_round(session)
    if round_ is None or round_.id is None:
        return _Reply(t("screen.no_round", locale))
    scope = scope_for(session, person_id=who.person_id, round_id=round_.id)
    names = visible_branches(session, scope)
    if not names:
        return _refused(session, update, who, "screen.refused")
    found = _match(names, query) if query else (list(names) if len(names) == 1 else [])
    if not found and query:  # outside the asker's scope, or no such branch: one answer for both
        return _refused(session, update, who, "screen.branch_not_found")
    if not found:
        return _Reply(t("screen.usage", locale))
    if len(found) > 1:
        listed = t("screen.list_separator", locale).join(names[o] for o in found[:20])
        return _Reply(t("screen.choose_exact", locale, names=listed))
    org_id = found[0]
    # The QR on the screen needs the branch link; make it now, in the asker's transaction.
    branch_link_token(session, org_id=org_id, round_id=round_.id, now=now, days=days)
    expires = now + timedelta(hours=settings.screen_hours)
    token = sign_grant(Grant(org_id=org_id, round_id=round_.id, expires=expires), bot_token)
    until = expires.astimezone(zone).strftime("%Y-%m-%d %H:%M")
    text = t(
        "screen.link",
        locale,
        name=names[org_id],
        until=until,
        url=projector_url(settings.base_url, token, locale),
    )
    button = mini_app_button(org_id, locale)
    return _Reply(text, InlineKeyboardMarkup([[button]]) if button else None)


async def screen_command(update: Update, context: Context) -> None:
    """/screen [BRANCH]."""
    bot_services = services(context)
    query = " ".join(context.args or [])
    answer = await in_transaction(
        context,
        lambda session: screen_answer(
            session,
            update,
            query,
            now=bot_services.now(),
            zone=bot_services.settings.zone,
            bot_token=bot_services.settings.require_token(),
            days=bot_services.settings.invitation_days,
        ),
    )
    chat = update.effective_chat
    assert chat is not None
    await context.bot.send_message(
        chat_id=chat.id,
        text=answer.text,
        reply_markup=answer.markup,
        parse_mode=ParseMode.HTML,
        disable_web_page_preview=True,
    )


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The /screen command."""
    return [CommandHandler("screen", screen_command, filters=PRIVATE)]
