"""/grades: proposals with thresholds, quotas, vetoes and ties; confirm or override each.

An override waits for its reason as the next text (``storage.pending``, kind 'override').
"""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardMarkup, Update

from bot import report_views as views
from bot.common import Context
from bot.report_callbacks import BranchTap, BranchView, OverrideTap
from bot.reports.common import (
    Answer,
    Request,
    args_of,
    button,
    grading_error,
    keyboard,
    name_of,
    organizer,
    pick_branch,
    refuse,
    request_of,
    run,
)
from storage.db import Session
from storage.grading import GradingError, decide_grade
from storage.pending import clear_pending, set_pending
from storage.tallies import BranchTally, round_tally
from surveys.i18n import t
from surveys.rules import GRADE_ORDER, Grade

OVERRIDE = "override"


def _grade_buttons(branch: BranchTally, locale: str) -> InlineKeyboardMarkup | None:
    proposal = branch.proposal
    if proposal is None or (branch.decision is not None and branch.decision.locked):
        return None
    confirm = button(
        t("report.confirm_button", locale, grade=views.grade_name(proposal.grade, locale)),
        BranchTap(BranchView.CONFIRM, branch.org_id),
    )
    others = [
        button(
            t("report.change_button", locale, grade=views.grade_name(grade, locale)),
            OverrideTap(branch.org_id, grade),
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
            tap = BranchTap(BranchView.GRADE, branch.org_id)
            buttons.append(button(views.short_name(branch.name, 12), tap))
    return Answer.text("\n".join(lines), keyboard(buttons, per_row=3) if buttons else None)


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


def _organized(session: Session, update: Update, request: Request, org_id: int, action: str) -> int:
    """The branch id if the asker organizes it; else Refused (audited)."""
    if not request.scope.organizes(org_id):
        raise refuse(session, update, request.viewer, action, target=f"org:{org_id}")
    return org_id


def grades_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/grades [branch]: proposals with thresholds, quotas, vetoes and ties; decide each."""
    request = request_of(session, update, context, "report.grades", organizer)
    if not query:
        return _grades_overview(session, request)
    picked = pick_branch(session, update, request, query, "report.grades", BranchView.GRADE)
    if isinstance(picked, Answer):
        return picked
    _organized(session, update, request, picked, "report.grades")
    return _grade_detail(session, request, picked)


def grade_tap(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap a branch of the /grades overview: its proposal with the decision buttons."""
    request = request_of(session, update, context, "report.grades", organizer)
    _organized(session, update, request, org_id, "report.grades")
    return _grade_detail(session, request, org_id)


async def grades_command(update: Update, context: Context) -> None:
    """/grades [branch]."""
    query = " ".join(args_of(context))
    await run(update, context, lambda session: grades_answer(session, update, context, query))


def confirm_grade(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap 确认: lock the proposed grade."""
    request = request_of(session, update, context, "grade.confirm", organizer)
    _organized(session, update, request, org_id, "grade.confirm")
    try:
        decision = decide_grade(
            session,
            round_id=request.round_id,
            org_id=org_id,
            person_id=request.person_id,
            now=request.now,
        )
    except GradingError as error:
        return grading_error(error, request.locale)
    name = name_of(session, org_id)
    grade = views.grade_name(decision.final_grade, request.locale)
    return Answer.text(t("report.confirmed", request.locale, name=views.esc(name), grade=grade))


def start_override(
    session: Session, update: Update, context: Context, org_id: int, grade: Grade
) -> Answer:
    """Tap 改为…: ask for the reason as the next text message (state kept in the database)."""
    request = request_of(session, update, context, "grade.override", organizer)
    _organized(session, update, request, org_id, "grade.override")
    set_pending(
        session,
        person_id=request.person_id,
        kind=OVERRIDE,
        data={"round_id": request.round_id, "org_id": org_id, "grade": grade.value},
        now=request.now,
    )
    name = name_of(session, org_id)
    grade_text = views.grade_name(grade, request.locale)
    return Answer.text(
        t("report.ask_reason", request.locale, name=views.esc(name), grade=grade_text)
    )


def continue_override(
    session: Session, request: Request, data: dict[str, Any], text: str
) -> Answer:
    """The reason of a waiting override: decide the grade with it."""
    org_id = int(data["org_id"])
    if not request.scope.organizes(org_id):
        clear_pending(session, person_id=request.person_id)
        return Answer.text(t("report.refused", request.locale))
    try:
        decision = decide_grade(
            session,
            round_id=int(data["round_id"]),
            org_id=org_id,
            person_id=request.person_id,
            now=request.now,
            grade=Grade(str(data["grade"])),
            reason=text,
        )
    except GradingError as error:
        if error.code != "reason_required":
            clear_pending(session, person_id=request.person_id)
        return Answer.text(t(f"report.error.{error.code}", request.locale))
    clear_pending(session, person_id=request.person_id)
    return Answer.text(
        t(
            "report.overridden",
            request.locale,
            name=views.esc(name_of(session, org_id)),
            grade=views.grade_name(decision.final_grade, request.locale),
            proposed=views.grade_name(decision.proposed_grade, request.locale),
            reason=views.esc(decision.reason or ""),
        )
    )
