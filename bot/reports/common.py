"""What every report feature shares: the answer to send, who asks, refusals, branch picking.

Every command and every tap reads the asker's roles from the database (``storage.scope``)
and the open round; a refusal is polite, names no data and is audited ('refused').
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardMarkup, Update
from telegram.constants import ParseMode

from bot import report_views as views
from bot.common import (
    Actor,
    Context,
    Viewer,
    audit,
    contact_keyboard,
    in_transaction,
    send_long,
    services,
    viewer_in,
)
from bot.report_callbacks import BranchTap, BranchView, ReportTap, encode
from storage.db import Session
from storage.grading import GradingError
from storage.reports import org_names
from storage.rounds import current_round
from storage.scope import Scope, scope_for
from surveys.i18n import t

# --- What a handler sends back ------------------------------------------------------------


@dataclass
class Answer:
    """Messages, a document and photos to send, in that order; or a toast for a tap."""

    texts: list[str] = field(default_factory=list)
    # Inline buttons; or the phone button for someone not registered (issue 14).
    markup: InlineKeyboardMarkup | ReplyKeyboardMarkup | None = None
    document: tuple[bytes, str] | None = None
    photos: list[bytes] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)  # one per photo, plain text
    toast: str | None = None
    alert: bool = False

    @classmethod
    def text(cls, text: str, markup: InlineKeyboardMarkup | None = None) -> Answer:
        """One HTML message, with buttons under it."""
        return cls(texts=[text], markup=markup)


async def send(update: Update, context: Context, answer: Answer) -> None:
    """Send an Answer to the chat of the update (answering the tap when there is one)."""
    chat = update.effective_chat
    assert chat is not None
    query = update.callback_query
    if query is not None:
        await query.answer(answer.toast, show_alert=answer.alert)
    for index, text in enumerate(answer.texts):
        last = index == len(answer.texts) - 1
        # Split within Telegram's limit on line boundaries (bot.common.send_long).
        await send_long(
            context,
            chat.id,
            text,
            parse_mode=ParseMode.HTML,
            reply_markup=answer.markup if last else None,
        )
    if answer.document is not None:
        data, filename = answer.document
        await context.bot.send_document(chat_id=chat.id, document=data, filename=filename)
    for index, photo in enumerate(answer.photos):
        caption = answer.captions[index] if index < len(answer.captions) else None
        await context.bot.send_photo(chat_id=chat.id, photo=photo, caption=caption)


def button(text: str, tap: ReportTap) -> InlineKeyboardButton:
    """A report button whose data is the encoded tap."""
    return InlineKeyboardButton(text, callback_data=encode(tap))


def keyboard(buttons: list[InlineKeyboardButton], per_row: int = 2) -> InlineKeyboardMarkup:
    """Buttons in rows of ``per_row``."""
    rows = [list(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row)]
    return InlineKeyboardMarkup(rows)


# --- Who asks, in which round, seeing what ------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A registered asker, the open round and what they may see in it."""

    viewer: Viewer
    actor: Actor
    round_id: int
    round_name: str
    scope: Scope
    now: datetime
    zone: tzinfo

    @property
    def locale(self) -> str:
        """The asker's language."""
        return self.viewer.locale

    @property
    def person_id(self) -> int:
        """The asker's person id (a Request is only made for a registered person)."""
        assert self.viewer.person_id is not None
        return self.viewer.person_id


class Refused(Exception):
    """The asker may not do this; the answer says so politely."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("refused")
        self.answer = answer


def refuse(
    session: Session,
    update: Update,
    who: Viewer,
    action: str,
    key: str = "report.refused",
    target: str | None = None,
) -> Refused:
    """Audit a refusal and build the polite answer (it names no data)."""
    audit(
        session,
        actor=Actor.of(update, who.person_id),
        action=action,
        target=target,
        outcome="refused",
        detail={"roles": list(who.roles)},
    )
    text = t(key, who.locale)
    return Refused(Answer(texts=[text], toast=text, alert=True))


def request_of(
    session: Session,
    update: Update,
    context: Context,
    action: str,
    allowed: Callable[[Scope], bool] = lambda scope: not scope.empty,
) -> Request:
    """The asker's request, or Refused (audited) when they may not make it."""
    who = viewer_in(session, update)
    if who.person_id is None:
        refused = refuse(session, update, who, action, "report.not_registered")
        refused.answer.markup = contact_keyboard(who.locale)  # the way forward, on screen
        raise refused
    round_ = current_round(session)
    if round_ is None or round_.id is None:
        text = t("report.no_round", who.locale)
        raise Refused(Answer(texts=[text], toast=text, alert=True))
    scope = scope_for(session, person_id=who.person_id, round_id=round_.id)
    if not allowed(scope):
        raise refuse(session, update, who, action)
    return Request(
        viewer=who,
        actor=Actor.of(update, who.person_id),
        round_id=round_.id,
        round_name=round_.name,
        scope=scope,
        now=services(context).now(),
        zone=services(context).settings.zone,
    )


def organizer(scope: Scope) -> bool:
    """May decide grades, vetoes and members-only branches."""
    return scope.is_organizer


def ledger_keeper(scope: Scope) -> bool:
    """May edit at least one rectification ledger."""
    return bool(scope.secretary_orgs or scope.organizer_orgs)


async def run(update: Update, context: Context, work: Callable[[Session], Answer]) -> None:
    """Run one request in a transaction; a refusal commits its audit row and is sent."""

    def guarded(session: Session) -> Answer:
        try:
            return work(session)
        except Refused as refused:
            return refused.answer

    answer = await in_transaction(context, guarded)
    await send(update, context, answer)


def grading_error(error: GradingError, locale: str) -> Answer:
    """A refused decision as an alert."""
    text = t(f"report.error.{error.code}", locale)
    return Answer(texts=[text], toast=text, alert=True)


def args_of(context: Context) -> list[str]:
    """The words after the command."""
    return list(context.args or [])


def name_of(session: Session, org_id: int) -> str:
    """A branch's name for a message ('' when it vanished)."""
    return org_names(session=session, org_ids=[org_id]).get(org_id, "")


# --- Which branch ---------------------------------------------------------------------------


def match_branch(names: dict[int, str], query: str) -> list[int]:
    """Exact name, else a unique or several substring matches (ignoring case and spaces)."""
    wanted = "".join(query.split()).lower()
    if not wanted:
        return []
    exact = [org_id for org_id, name in names.items() if name.lower() == wanted]
    if exact:
        return exact
    return sorted(
        (org_id for org_id, name in names.items() if wanted in "".join(name.split()).lower()),
        key=lambda org_id: names[org_id],
    )


def pick_branch(
    session: Session,
    update: Update,
    request: Request,
    query: str,
    action: str,
    tap: BranchView | None,
) -> int | Answer:
    """One visible branch for a typed name; else choices (as buttons when ``tap`` says what a
    tap shows, else as text to type again), or a polite refusal."""
    visible = org_names(session=session, org_ids=request.scope.visible_orgs)
    found = match_branch(visible, query)
    if len(found) == 1:
        return found[0]
    if found and tap is None:
        names = t("report.list_separator", request.locale).join(visible[o] for o in found)
        return Answer.text(t("report.choose_exact", request.locale, names=views.esc(names)))
    if found:
        buttons = [button(views.short_name(visible[o], 16), BranchTap(tap, o)) for o in found[:20]]
        return Answer.text(t("report.choose_branch", request.locale), keyboard(buttons))
    # Someone outside their scope is named: refuse without saying whether it exists.
    if match_branch(org_names(session=session), query):
        raise refuse(session, update, request.viewer, action, "report.branch_not_found")
    return Answer.text(t("report.branch_not_found", request.locale))


def single_branch(request: Request) -> int | None:
    """The branch to show without a name: the only one visible, else None (a table)."""
    visible = request.scope.visible_orgs
    return next(iter(visible)) if len(visible) == 1 else None


def named_or_only_branch(
    session: Session, update: Update, request: Request, query: str, action: str, tap: BranchView
) -> int | Answer | None:
    """The branch the query names, else the viewer's only branch, else None (show them all).

    An Answer instead when the name is ambiguous, unknown or outside the viewer's scope.
    """
    if not query:
        return single_branch(request)
    return pick_branch(session, update, request, query, action, tap)


def choose_from(session: Session, request: Request, tap: BranchView) -> Answer:
    """Every visible branch as a button that shows ``tap`` for it."""
    names = org_names(session=session, org_ids=request.scope.visible_orgs)
    ordered = sorted(names, key=lambda org_id: names[org_id])
    buttons = [button(views.short_name(names[o], 16), BranchTap(tap, o)) for o in ordered[:60]]
    return Answer.text(t("report.choose_branch", request.locale), keyboard(buttons, per_row=3))


def seen_branch(
    session: Session, update: Update, request: Request, org_id: int, action: str
) -> int:
    """The tapped branch id if the asker may see it; else Refused (audited, naming the id)."""
    if not request.scope.can_see(org_id):
        raise refuse(session, update, request.viewer, action, target=f"org:{org_id}")
    return org_id
