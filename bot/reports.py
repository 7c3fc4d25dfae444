"""Reports and decisions for organizers, secretaries and inspectors.

Commands: /tally /coverage /rank /grades /export /chart /publish /rectify /veto /members_only.
Every command and every tap reads the asker's roles from the database (``storage.scope``)
and the open round; a refusal is polite, names no data and is audited ('refused').

Steps that wait for typed text (an override's reason, the fields of a ledger line) keep
their state in the database (``storage.grading.set_pending``). Their handlers come from
:func:`priority_handlers`, to be registered in group -1 so they see a text before the
survey answering does; they stop further handling only when a report step was waiting.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from sqlmodel import Session, col, select
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import (
    ApplicationHandlerStop,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot import charts
from bot import report_views as views
from bot.common import (
    PRIVATE,
    Actor,
    Context,
    MenuCommand,
    Viewer,
    audit,
    in_transaction,
    viewer_in,
)
from bot.context import services
from bot.screen import mini_app_button  # the meeting screen's Mini App button (issue 13)
from storage.export import build_workbook
from storage.grading import (
    GradingError,
    add_rectification,
    clear_pending,
    close_rectification,
    decide_grade,
    ledger,
    mark_members_only,
    parse_due_date,
    pending_for,
    record_veto,
    set_pending,
    sign,
    signatures,
)
from storage.models import Organization, RectificationItem
from storage.participation import non_respondents
from storage.rounds import current_round
from storage.scope import Scope, scope_for
from storage.tallies import BranchTally, RoundTally, round_tally, satisfaction_instrument
from surveys.i18n import t
from surveys.instruments import get_instrument
from surveys.rules import GRADE_ORDER, Grade

PREFIX = "rp:"
CALLBACK_PATTERN = r"^rp:"
"""Callback data this module owns: ``rp:<action>:<args>``."""

_VIEWERS = frozenset({"organizer", "secretary", "inspector"})
COMMANDS = (
    MenuCommand("tally", "report.command.tally", roles=_VIEWERS),
    MenuCommand("coverage", "report.command.coverage", roles=_VIEWERS),
    MenuCommand("rank", "report.command.rank", roles=_VIEWERS),
    MenuCommand("grades", "report.command.grades", roles=frozenset({"organizer"})),
    MenuCommand("export", "report.command.export", roles=_VIEWERS),
    MenuCommand("chart", "report.command.chart", roles=_VIEWERS),
    MenuCommand("publish", "report.command.publish", roles=_VIEWERS),
    MenuCommand("rectify", "report.command.rectify", roles=frozenset({"organizer", "secretary"})),
    MenuCommand("veto", "report.command.veto", roles=frozenset({"organizer"})),
    MenuCommand("members_only", "report.command.members_only", roles=frozenset({"organizer"})),
)

RECTIFY_STEPS = ("matter", "measures", "due_on", "responsible")


# --- What a handler sends back ------------------------------------------------------------


@dataclass
class Answer:
    """Messages, a document and photos to send, in that order; or a toast for a tap."""

    texts: list[str] = field(default_factory=list)
    markup: InlineKeyboardMarkup | None = None
    document: tuple[bytes, str] | None = None
    photos: list[bytes] = field(default_factory=list)
    toast: str | None = None
    alert: bool = False

    @classmethod
    def text(cls, text: str, markup: InlineKeyboardMarkup | None = None) -> Answer:
        """One HTML message, with buttons under it."""
        return cls(texts=[text], markup=markup)


async def _send(update: Update, context: Context, answer: Answer) -> None:
    """Send an Answer to the chat of the update (answering the tap when there is one)."""
    chat = update.effective_chat
    assert chat is not None
    query = update.callback_query
    if query is not None:
        await query.answer(answer.toast, show_alert=answer.alert)
    for index, text in enumerate(answer.texts):
        last = index == len(answer.texts) - 1
        await context.bot.send_message(
            chat_id=chat.id,
            text=text,
            parse_mode=ParseMode.HTML,
            reply_markup=answer.markup if last else None,
        )
    if answer.document is not None:
        data, filename = answer.document
        await context.bot.send_document(chat_id=chat.id, document=data, filename=filename)
    for photo in answer.photos:
        await context.bot.send_photo(chat_id=chat.id, photo=photo)


def _button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=PREFIX + data)


def _keyboard(buttons: Sequence[InlineKeyboardButton], per_row: int = 2) -> InlineKeyboardMarkup:
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


class Refused(Exception):
    """The asker may not do this; the answer says so politely."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("refused")
        self.answer = answer


def _refuse(
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


def _request(
    session: Session,
    update: Update,
    context: Context,
    action: str,
    allowed: Callable[[Scope], bool] = lambda scope: not scope.empty,
) -> Request:
    """The asker's request, or Refused (audited) when they may not make it."""
    who = viewer_in(session, update)
    if who.person_id is None:
        raise _refuse(session, update, who, action, "report.not_registered")
    round_ = current_round(session)
    if round_ is None or round_.id is None:
        text = t("report.no_round", who.locale)
        raise Refused(Answer(texts=[text], toast=text, alert=True))
    scope = scope_for(session, person_id=who.person_id, round_id=round_.id)
    if not allowed(scope):
        raise _refuse(session, update, who, action)
    return Request(
        viewer=who,
        actor=Actor.of(update, who.person_id),
        round_id=round_.id,
        round_name=round_.name,
        scope=scope,
        now=services(context).now(),
        zone=services(context).settings.zone,
    )


def _organizer(scope: Scope) -> bool:
    return scope.is_organizer


def _ledger_keeper(scope: Scope) -> bool:
    return bool(scope.secretary_orgs or scope.organizer_orgs)


async def _run(update: Update, context: Context, work: Callable[[Session], Answer]) -> None:
    """Run one request in a transaction; a refusal commits its audit row and is sent."""

    def guarded(session: Session) -> Answer:
        try:
            return work(session)
        except Refused as refused:
            return refused.answer

    answer = await in_transaction(context, guarded)
    await _send(update, context, answer)


def _names(session: Session, org_ids: Sequence[int] | frozenset[int]) -> dict[int, str]:
    if not org_ids:
        return {}
    rows = session.exec(
        select(Organization.id, Organization.name).where(col(Organization.id).in_(list(org_ids)))
    ).all()
    return {int(org_id): name for org_id, name in rows}


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


def _pick_branch(
    session: Session,
    update: Update,
    request: Request,
    query: str,
    action: str,
    tap: str | None,
) -> int | Answer:
    """One visible branch for a typed name; else choices (as buttons when ``tap`` says what a
    tap shows, else as text to type again), or a polite refusal."""
    visible = _names(session, request.scope.visible_orgs)
    found = match_branch(visible, query)
    if len(found) == 1:
        return found[0]
    if found and tap is None:
        names = t("report.list_separator", request.locale).join(visible[o] for o in found)
        return Answer.text(t("report.choose_exact", request.locale, names=views.esc(names)))
    if found:
        buttons = [_button(views.short_name(visible[o], 16), f"{tap}:{o}") for o in found[:20]]
        return Answer.text(t("report.choose_branch", request.locale), _keyboard(buttons))
    # Someone outside their scope is named: refuse without saying whether it exists.
    everyone = _names(session, _all_branch_ids(session))
    if match_branch(everyone, query):
        raise _refuse(session, update, request.viewer, action, "report.branch_not_found")
    return Answer.text(t("report.branch_not_found", request.locale))


def _all_branch_ids(session: Session) -> list[int]:
    return [int(i) for i in session.exec(select(Organization.id)).all() if i is not None]


def _args(context: Context) -> list[str]:
    return list(context.args or [])


def _single_branch(request: Request) -> int | None:
    """The branch to show without a name: the only one visible, else None (a table)."""
    visible = request.scope.visible_orgs
    return next(iter(visible)) if len(visible) == 1 else None


# --- /tally -----------------------------------------------------------------------------------


def _branch_detail(session: Session, request: Request, org_id: int) -> Answer:
    tally = round_tally(session, round_id=request.round_id, org_ids=[org_id])
    branch = tally.branch(org_id)
    if branch is None:
        return Answer.text(t("report.branch_not_in_round", request.locale))
    inspection = "inspection_two_new"
    if branch.category.value in ("village", "community"):
        inspection = "inspection_village"
    text = views.branch_tally_text(
        branch,
        tally,
        request.locale,
        self_instrument=get_instrument("self_evaluation"),
        inspection_instrument=get_instrument(inspection),
    )
    return Answer.text(text)


def _visible_tally(session: Session, request: Request) -> RoundTally:
    return round_tally(session, round_id=request.round_id, org_ids=request.scope.visible_orgs)


def _named_or_only_branch(
    session: Session, update: Update, request: Request, query: str, action: str, prefix: str
) -> int | Answer | None:
    """The branch the query names, else the viewer's only branch, else None (show them all).

    An Answer instead when the name is ambiguous, unknown or outside the viewer's scope.
    """
    if not query:
        return _single_branch(request)
    return _pick_branch(session, update, request, query, action, prefix)


def tally_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/tally [branch]: one branch in full, or every visible branch in a compact table."""
    request = _request(session, update, context, "report.tally")
    org_id = _named_or_only_branch(session, update, request, query, "report.tally", "t")
    if isinstance(org_id, Answer):
        return org_id
    if org_id is not None:
        return _branch_detail(session, request, org_id)
    tally = _visible_tally(session, request)
    title = t("report.tally_title", request.locale, round=request.round_name)
    markup = _keyboard([_button(t("report.full_file_button", request.locale), "x")])
    return Answer.text(views.township_table(tally, request.locale, title=title), markup)


async def tally_command(update: Update, context: Context) -> None:
    """/tally [branch]."""
    query = " ".join(_args(context))
    await _run(update, context, lambda session: tally_answer(session, update, context, query))


# --- /coverage ----------------------------------------------------------------------------


def coverage_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/coverage [branch]: the gap per branch, or a branch's non-respondents by name."""
    request = _request(session, update, context, "report.coverage")
    org_id = _named_or_only_branch(session, update, request, query, "report.coverage", "c")
    if isinstance(org_id, Answer):
        return org_id
    if org_id is None:
        return Answer.text(views.coverage_table(_visible_tally(session, request), request.locale))
    return _branch_coverage(session, request, org_id)


def _branch_coverage(session: Session, request: Request, org_id: int) -> Answer:
    branch = round_tally(session, round_id=request.round_id, org_ids=[org_id]).branch(org_id)
    if branch is None:
        return Answer.text(t("report.branch_not_in_round", request.locale))
    waiting = non_respondents(session, round_id=request.round_id, org_id=org_id)
    return Answer.text(views.branch_coverage_text(branch, waiting, request.locale))


async def coverage_command(update: Update, context: Context) -> None:
    """/coverage [branch]."""
    query = " ".join(_args(context))
    await _run(update, context, lambda session: coverage_answer(session, update, context, query))


# --- /rank --------------------------------------------------------------------------------


async def rank_command(update: Update, context: Context) -> None:
    """/rank: rankings by score and by inspection, with ties."""

    def work(session: Session) -> Answer:
        request = _request(session, update, context, "report.rank")
        return Answer.text(views.ranking_text(_visible_tally(session, request), request.locale))

    await _run(update, context, work)


# --- /grades ------------------------------------------------------------------------------


def _grade_buttons(branch: BranchTally, locale: str) -> InlineKeyboardMarkup | None:
    proposal = branch.proposal
    if proposal is None or (branch.decision is not None and branch.decision.locked):
        return None
    confirm = _button(
        t("report.confirm_button", locale, grade=views.grade_name(proposal.grade, locale)),
        f"g:{branch.org_id}",
    )
    others = [
        _button(
            t("report.change_button", locale, grade=views.grade_name(grade, locale)),
            f"o:{branch.org_id}:{grade.value}",
        )
        for grade in GRADE_ORDER
        if grade is not proposal.grade
    ]
    return InlineKeyboardMarkup([[confirm], others])


def _grades_overview(session: Session, request: Request) -> Answer:
    tally = round_tally(session, round_id=request.round_id, org_ids=request.scope.organizer_orgs)
    locale = request.locale
    lines = [views.grades_header(tally, locale)]
    buttons = []
    for branch in tally.branches:
        proposal = branch.proposal
        state = views.DASH
        if branch.decision is not None and branch.decision.final_grade is not None:
            state = "🔒" + views.grade_name(branch.decision.final_grade, locale)
        elif proposal is not None:
            state = views.grade_name(proposal.grade, locale) + ("⚠" if proposal.tie_at_edge else "")
        lines.append(
            f"{views.esc(views.short_name(branch.name, 16))}  "
            f"{views.score(branch.grading_score)}  {state}"
        )
        if proposal is not None and not (branch.decision and branch.decision.locked):
            buttons.append(_button(views.short_name(branch.name, 12), f"d:{branch.org_id}"))
    return Answer.text("\n".join(lines), _keyboard(buttons, per_row=3) if buttons else None)


def _grade_detail(session: Session, request: Request, org_id: int) -> Answer:
    tally = round_tally(session, round_id=request.round_id, org_ids=[org_id])
    branch = tally.branch(org_id)
    if branch is None:
        return Answer.text(t("report.branch_not_in_round", request.locale))
    text = (
        views.grades_header(tally, request.locale)
        + "\n\n"
        + views.grade_line(branch, request.locale)
    )
    return Answer.text(text, _grade_buttons(branch, request.locale))


def grades_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/grades [branch]: proposals with thresholds, quotas, vetoes and ties; decide each."""
    request = _request(session, update, context, "report.grades", _organizer)
    if not query:
        return _grades_overview(session, request)
    picked = _pick_branch(session, update, request, query, "report.grades", "d")
    if isinstance(picked, Answer):
        return picked
    if not request.scope.organizes(picked):
        raise _refuse(session, update, request.viewer, "report.grades", target=f"org:{picked}")
    return _grade_detail(session, request, picked)


async def grades_command(update: Update, context: Context) -> None:
    """/grades [branch]."""
    query = " ".join(_args(context))
    await _run(update, context, lambda session: grades_answer(session, update, context, query))


def _grading_error(error: GradingError, locale: str) -> Answer:
    text = t(f"report.error.{error.code}", locale)
    return Answer(texts=[text], toast=text, alert=True)


def confirm_grade(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap 确认: lock the proposed grade."""
    request = _request(session, update, context, "grade.confirm", _organizer)
    if not request.scope.organizes(org_id):
        raise _refuse(session, update, request.viewer, "grade.confirm", target=f"org:{org_id}")
    try:
        decision = decide_grade(
            session,
            round_id=request.round_id,
            org_id=org_id,
            person_id=request.viewer.person_id,
            now=request.now,
        )
    except GradingError as error:
        return _grading_error(error, request.locale)
    name = _names(session, [org_id]).get(org_id, "")
    grade = views.grade_name(decision.final_grade, request.locale)
    return Answer.text(t("report.confirmed", request.locale, name=views.esc(name), grade=grade))


def start_override(
    session: Session, update: Update, context: Context, org_id: int, grade: Grade
) -> Answer:
    """Tap 改为…: ask for the reason as the next text message (state kept in the database)."""
    request = _request(session, update, context, "grade.override", _organizer)
    if not request.scope.organizes(org_id):
        raise _refuse(session, update, request.viewer, "grade.override", target=f"org:{org_id}")
    assert request.viewer.person_id is not None
    set_pending(
        session,
        person_id=request.viewer.person_id,
        kind="override",
        data={"round_id": request.round_id, "org_id": org_id, "grade": grade.value},
    )
    name = _names(session, [org_id]).get(org_id, "")
    grade_text = views.grade_name(grade, request.locale)
    return Answer.text(
        t("report.ask_reason", request.locale, name=views.esc(name), grade=grade_text)
    )


# --- /veto and /members_only --------------------------------------------------------------


def _organized_branch(
    session: Session, update: Update, request: Request, args: list[str], action: str, usage: str
) -> int | Answer:
    """The branch named first in args, if the organizer's scope covers it; else the answer to give.

    Shared by the organizer's one-line commands that take a branch and at least one more word.
    """
    if len(args) < 2:
        return Answer.text(t(usage, request.locale))
    picked = _pick_branch(session, update, request, args[0], action, None)
    if isinstance(picked, Answer):
        return picked
    if not request.scope.organizes(picked):
        raise _refuse(session, update, request.viewer, action, target=f"org:{picked}")
    return picked


def veto_answer(session: Session, update: Update, context: Context, args: list[str]) -> Answer:
    """/veto <branch> <condition> [note]: record a 高压线 condition against a branch."""
    request = _request(session, update, context, "grade.veto", _organizer)
    picked = _organized_branch(session, update, request, args, "grade.veto", "report.veto_usage")
    if isinstance(picked, Answer):
        return picked
    try:
        veto = record_veto(
            session,
            round_id=request.round_id,
            org_id=picked,
            condition=args[1],
            note=" ".join(args[2:]) or None,
            person_id=request.viewer.person_id,
            now=request.now,
        )
    except GradingError as error:
        return Answer.text(t(f"report.error.{error.code}", request.locale))
    name = _names(session, [picked])[picked]
    condition = t(f"veto.{veto.condition}", request.locale)
    return Answer.text(
        t("report.veto_recorded", request.locale, name=views.esc(name), condition=condition)
    )


async def veto_command(update: Update, context: Context) -> None:
    """/veto <branch> <condition> [note]."""
    args = _args(context)
    await _run(update, context, lambda session: veto_answer(session, update, context, args))


def members_only_answer(
    session: Session, update: Update, context: Context, args: list[str]
) -> Answer:
    """/members_only <branch> <reason>: the masses cannot be reached (以全体党员测评为准)."""
    request = _request(session, update, context, "org.members_only", _organizer)
    usage = "report.members_only_usage"
    picked = _organized_branch(session, update, request, args, "org.members_only", usage)
    if isinstance(picked, Answer):
        return picked
    try:
        org = mark_members_only(
            session,
            org_id=picked,
            reason=" ".join(args[1:]),
            person_id=request.viewer.person_id,
            now=request.now,
        )
    except GradingError as error:
        return Answer.text(t(f"report.error.{error.code}", request.locale))
    return Answer.text(
        t(
            "report.members_only_recorded",
            request.locale,
            name=views.esc(org.name),
            reason=views.esc(org.members_only_reason or ""),
        )
    )


async def members_only_command(update: Update, context: Context) -> None:
    """/members_only <branch> <reason>."""
    args = _args(context)
    await _run(update, context, lambda session: members_only_answer(session, update, context, args))


# --- /export and /chart -------------------------------------------------------------------


def export_answer(session: Session, update: Update, context: Context) -> Answer:
    """/export: the workbook of every branch the asker may see."""
    request = _request(session, update, context, "report.export")
    workbook = build_workbook(
        session,
        round_id=request.round_id,
        locale=request.locale,
        org_ids=request.scope.visible_orgs,
        zone=request.zone,
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    audit(
        session,
        actor=request.actor,
        action="report.export",
        detail={"branches": len(request.scope.visible_orgs)},
    )
    filename = t("export.filename", request.locale, round=request.round_name)
    return Answer(
        texts=[t("report.export_ready", request.locale)], document=(buffer.getvalue(), filename)
    )


async def export_command(update: Update, context: Context) -> None:
    """/export."""
    await _run(update, context, lambda session: export_answer(session, update, context))


def chart_answer(session: Session, update: Update, context: Context) -> Answer:
    """/chart: participation per branch against its target; scores and grades."""
    request = _request(session, update, context, "report.chart")
    tally = _visible_tally(session, request)
    return Answer(
        texts=[t("report.chart_ready", request.locale)],
        photos=[
            charts.participation_chart(tally, request.locale),
            charts.score_chart(tally, request.locale),
        ],
    )


async def chart_command(update: Update, context: Context) -> None:
    """/chart."""
    await _run(update, context, lambda session: chart_answer(session, update, context))


# --- /publish -----------------------------------------------------------------------------


def _sign_buttons(
    request: Request, org_id: int, signed: Mapping[str, object]
) -> list[InlineKeyboardButton]:
    buttons = []
    if "secretary" not in signed and request.scope.is_secretary_of(org_id):
        buttons.append(_button(t("report.sign_secretary_button", request.locale), f"s:{org_id}:s"))
    if "work_group_leader" not in signed and request.scope.leads_work_group_of(org_id):
        buttons.append(_button(t("report.sign_leader_button", request.locale), f"s:{org_id}:l"))
    return buttons


def _publish_view(session: Session, request: Request, org_id: int) -> Answer:
    tally = round_tally(session, round_id=request.round_id, org_ids=[org_id], distribution=True)
    branch = tally.branch(org_id)
    if branch is None:
        return Answer.text(t("report.branch_not_in_round", request.locale))
    signed = signatures(session, round_id=request.round_id, org_ids=[org_id]).get(org_id, {})
    instrument = satisfaction_instrument(session, request.round_id)
    text = views.publish_text(branch, tally, instrument, signed, request.zone, request.locale)
    buttons = _sign_buttons(request, org_id, signed)
    buttons += [b for b in [mini_app_button(org_id, request.locale)] if b is not None]
    return Answer.text(text, _keyboard(buttons, per_row=1) if buttons else None)


def publish_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/publish [branch]: the tally to announce at the meeting, then the sign-off buttons."""
    request = _request(session, update, context, "report.publish")
    org_id = _single_branch(request) if not query else None
    if query or org_id is None:
        picked = _pick_branch(session, update, request, query or "", "report.publish", "p")
        if isinstance(picked, Answer):
            if not query:
                return _choose_from(session, request, "p")
            return picked
        org_id = picked
    return _publish_view(session, request, org_id)


def _choose_from(session: Session, request: Request, tap: str) -> Answer:
    names = _names(session, request.scope.visible_orgs)
    ordered = sorted(names, key=lambda org_id: names[org_id])
    buttons = [_button(views.short_name(names[o], 16), f"{tap}:{o}") for o in ordered[:60]]
    return Answer.text(t("report.choose_branch", request.locale), _keyboard(buttons, per_row=3))


async def publish_command(update: Update, context: Context) -> None:
    """/publish [branch]."""
    query = " ".join(_args(context))
    await _run(update, context, lambda session: publish_answer(session, update, context, query))


def sign_tap(session: Session, update: Update, context: Context, org_id: int, role: str) -> Answer:
    """Tap a sign-off button: 书记 for the branch's secretary, 工作组组长 for its leader."""
    request = _request(session, update, context, "sign_off")
    capacity = "secretary" if role == "s" else "work_group_leader"
    allowed = (
        request.scope.is_secretary_of(org_id)
        if capacity == "secretary"
        else request.scope.leads_work_group_of(org_id)
    )
    if not allowed:
        raise _refuse(session, update, request.viewer, "sign_off", target=f"org:{org_id}")
    assert request.viewer.person_id is not None
    try:
        sign(
            session,
            round_id=request.round_id,
            org_id=org_id,
            role=capacity,
            person_id=request.viewer.person_id,
            now=request.now,
        )
    except GradingError as error:
        return _grading_error(error, request.locale)
    answer = _publish_view(session, request, org_id)
    answer.toast = t("report.signed_toast", request.locale)
    return answer


# --- /rectify -----------------------------------------------------------------------------


def _ledger_view(session: Session, request: Request, org_id: int) -> Answer:
    items = ledger(session, org_ids=[org_id])
    name = _names(session, [org_id]).get(org_id, "")
    zone = request.zone
    today = request.now.astimezone(zone).date()
    text = views.ledger_text(name, items, today, zone, request.locale)
    buttons = []
    if request.scope.keeps_ledger_of(org_id):
        buttons.append(_button(t("report.ledger_add_button", request.locale), f"ra:{org_id}"))
        for number, item in enumerate(items, start=1):
            if item.closed_at is None:
                buttons.append(
                    _button(
                        t("report.ledger_close_button", request.locale, number=number),
                        f"k:{item.id}",
                    )
                )
    return Answer.text(text, _keyboard(buttons, per_row=2) if buttons else None)


def rectify_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/rectify [branch]: the ledger, with buttons to add a line or close one (销号)."""
    request = _request(session, update, context, "rectify.view")
    org_id = _named_or_only_branch(session, update, request, query, "rectify.view", "r")
    if isinstance(org_id, Answer):
        return org_id
    if org_id is None:
        return _choose_from(session, request, "r")
    return _ledger_view(session, request, org_id)


async def rectify_command(update: Update, context: Context) -> None:
    """/rectify [branch]."""
    query = " ".join(_args(context))
    await _run(update, context, lambda session: rectify_answer(session, update, context, query))


def start_rectification(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap 新增: ask for the 整改事项 first; the other fields follow as text messages."""
    request = _request(session, update, context, "rectify.add", _ledger_keeper)
    if not request.scope.keeps_ledger_of(org_id):
        raise _refuse(session, update, request.viewer, "rectify.add", target=f"org:{org_id}")
    assert request.viewer.person_id is not None
    set_pending(
        session,
        person_id=request.viewer.person_id,
        kind="rectify",
        data={"round_id": request.round_id, "org_id": org_id, "step": RECTIFY_STEPS[0]},
    )
    return Answer.text(t("report.ask.matter", request.locale))


def close_tap(session: Session, update: Update, context: Context, item_id: int) -> Answer:
    """Tap 销号: close a ledger line of a branch the asker keeps."""
    request = _request(session, update, context, "rectify.close", _ledger_keeper)
    item = session.get(RectificationItem, item_id)
    if item is None or not request.scope.keeps_ledger_of(item.org_id):
        raise _refuse(session, update, request.viewer, "rectify.close", target=f"item:{item_id}")
    try:
        close_rectification(
            session, item_id=item_id, person_id=request.viewer.person_id, now=request.now
        )
    except GradingError as error:
        return _grading_error(error, request.locale)
    answer = _ledger_view(session, request, item.org_id)
    answer.toast = t("report.ledger_closed_toast", request.locale)
    return answer


# --- Text answering a waiting step ------------------------------------------------------------


def _continue_override(
    session: Session, request: Request, data: dict[str, object], text: str
) -> Answer:
    org_id = int(data["org_id"])  # type: ignore[call-overload]
    assert request.viewer.person_id is not None
    if not request.scope.organizes(org_id):
        clear_pending(session, person_id=request.viewer.person_id)
        return Answer.text(t("report.refused", request.locale))
    try:
        decision = decide_grade(
            session,
            round_id=int(data["round_id"]),  # type: ignore[call-overload]
            org_id=org_id,
            person_id=request.viewer.person_id,
            now=request.now,
            grade=Grade(str(data["grade"])),
            reason=text,
        )
    except GradingError as error:
        if error.code != "reason_required":
            clear_pending(session, person_id=request.viewer.person_id)
        return Answer.text(t(f"report.error.{error.code}", request.locale))
    clear_pending(session, person_id=request.viewer.person_id)
    name = _names(session, [org_id]).get(org_id, "")
    return Answer.text(
        t(
            "report.overridden",
            request.locale,
            name=views.esc(name),
            grade=views.grade_name(decision.final_grade, request.locale),
            proposed=views.grade_name(decision.proposed_grade, request.locale),
            reason=views.esc(decision.reason or ""),
        )
    )


def _continue_rectification(
    session: Session, request: Request, data: dict[str, object], text: str
) -> Answer:
    person_id = request.viewer.person_id
    assert person_id is not None
    org_id = int(data["org_id"])  # type: ignore[call-overload]
    if not request.scope.keeps_ledger_of(org_id):
        clear_pending(session, person_id=person_id)
        return Answer.text(t("report.refused", request.locale))
    step = str(data["step"])
    value = text.strip()
    if step == "due_on":
        today = request.now.astimezone(request.zone).date()
        due = parse_due_date(value, today=today)
        if due is None:
            return Answer.text(t("report.error.bad_date", request.locale))
        value = due.isoformat()
    if not value:
        return Answer.text(t(f"report.ask.{step}", request.locale))
    fields = {**data, step: value}
    position = RECTIFY_STEPS.index(step)
    if position + 1 < len(RECTIFY_STEPS):
        following = RECTIFY_STEPS[position + 1]
        set_pending(
            session, person_id=person_id, kind="rectify", data={**fields, "step": following}
        )
        return Answer.text(t(f"report.ask.{following}", request.locale))
    add_rectification(
        session,
        org_id=org_id,
        round_id=int(data["round_id"]),  # type: ignore[call-overload]
        matter=str(fields["matter"]),
        measures=str(fields["measures"]),
        due_on=datetime.fromisoformat(str(fields["due_on"])).date(),
        responsible=str(fields["responsible"]),
        person_id=person_id,
    )
    clear_pending(session, person_id=person_id)
    answer = _ledger_view(session, request, org_id)
    answer.texts.insert(0, t("report.ledger_added", request.locale))
    return answer


def pending_text_answer(
    session: Session, update: Update, context: Context, text: str
) -> Answer | None:
    """The answer to a text when a report step waits for it; None when none does."""
    who = viewer_in(session, update)
    if who.person_id is None:
        return None
    now = services(context).now()
    pending = pending_for(session, person_id=who.person_id, now=now)
    if pending is None:
        return None
    action = "grade.override" if pending.kind == "override" else "rectify.add"
    try:
        request = _request(session, update, context, action)
    except Refused as refused:
        clear_pending(session, person_id=who.person_id)
        return refused.answer
    if pending.kind == "override":
        return _continue_override(session, request, pending.data, text)
    return _continue_rectification(session, request, pending.data, text)


async def on_pending_text(update: Update, context: Context) -> None:
    """A text while a report step waits: handle it and stop; otherwise let others have it."""
    message = update.effective_message
    if message is None or message.text is None:
        return
    text = message.text

    def work(session: Session) -> Answer | None:
        return pending_text_answer(session, update, context, text)

    answer = await in_transaction(context, work)
    if answer is None:
        return
    await _send(update, context, answer)
    raise ApplicationHandlerStop


async def on_cancel(update: Update, context: Context) -> None:
    """/cancel while a report step waits: forget the step and stop; otherwise pass it on."""

    def work(session: Session) -> str | None:
        who = viewer_in(session, update)
        if who.person_id is None:
            return None
        if pending_for(session, person_id=who.person_id, now=services(context).now()) is None:
            return None
        clear_pending(session, person_id=who.person_id)
        return t("report.cancelled", who.locale)

    text = await in_transaction(context, work)
    if text is None:
        return
    await _send(update, context, Answer.text(text))
    raise ApplicationHandlerStop


# --- Taps -----------------------------------------------------------------------------------


def tap_answer(session: Session, update: Update, context: Context, data: str) -> Answer:
    """Dispatch a tap on one of this module's buttons (roles re-checked by each step)."""
    action, _, rest = data.removeprefix(PREFIX).partition(":")
    args = rest.split(":") if rest else []
    numbers = [int(arg) for arg in args if arg.isdigit()]
    if action == "t" and numbers:
        return tally_answer(session, update, context, _name_of(session, numbers[0]))
    if action == "c" and numbers:
        return coverage_answer(session, update, context, _name_of(session, numbers[0]))
    if action == "x":
        return export_answer(session, update, context)
    if action == "d" and numbers:
        return grades_answer(session, update, context, _name_of(session, numbers[0]))
    if action == "g" and numbers:
        return confirm_grade(session, update, context, numbers[0])
    if action == "o" and numbers and len(args) == 2 and args[1] in Grade._value2member_map_:
        return start_override(session, update, context, numbers[0], Grade(args[1]))
    if action == "p" and numbers:
        return publish_answer(session, update, context, _name_of(session, numbers[0]))
    if action == "s" and numbers and len(args) == 2 and args[1] in ("s", "l"):
        return sign_tap(session, update, context, numbers[0], args[1])
    if action == "r" and numbers:
        return rectify_answer(session, update, context, _name_of(session, numbers[0]))
    if action == "ra" and numbers:
        return start_rectification(session, update, context, numbers[0])
    if action == "k" and numbers:
        return close_tap(session, update, context, numbers[0])
    who = viewer_in(session, update)
    text = t("report.stale_button", who.locale)
    return Answer(toast=text, alert=True)


def _name_of(session: Session, org_id: int) -> str:
    org = session.get(Organization, org_id)
    return org.name if org is not None else f"#{org_id}"


async def on_tap(update: Update, context: Context) -> None:
    """A tap on a report button."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    data = query.data
    await _run(update, context, lambda session: tap_answer(session, update, context, data))


# --- Registration ---------------------------------------------------------------------------


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The handlers of this module, in the order they must be registered."""
    return [
        CommandHandler("tally", tally_command, filters=PRIVATE),
        CommandHandler("coverage", coverage_command, filters=PRIVATE),
        CommandHandler("rank", rank_command, filters=PRIVATE),
        CommandHandler("grades", grades_command, filters=PRIVATE),
        CommandHandler("export", export_command, filters=PRIVATE),
        CommandHandler("chart", chart_command, filters=PRIVATE),
        CommandHandler("publish", publish_command, filters=PRIVATE),
        CommandHandler("rectify", rectify_command, filters=PRIVATE),
        CommandHandler("veto", veto_command, filters=PRIVATE),
        CommandHandler("members_only", members_only_command, filters=PRIVATE),
        CallbackQueryHandler(on_tap, pattern=CALLBACK_PATTERN),
    ]


def priority_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """Handlers for group -1: a text or /cancel while a report step waits for it."""
    return [
        CommandHandler("cancel", on_cancel, filters=PRIVATE),
        MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, on_pending_text),
    ]
