"""/grades: proposals per pool with basis and status; every decision checked before the tap.

A grade is locked only after a step that shows its effect on the pool's quotas and vetoes
(docs/rules.md §8). A decision that breaks a rule needs a reason and a second organizer's
confirmation; a locked grade is unlocked with a reason. Reasons arrive as the next text
(``storage.pending``, kinds 'override', 'exception', 'unlock').
"""

from __future__ import annotations

from typing import Any

from telegram import InlineKeyboardMarkup, Update

from bot import report_views as views
from bot.common import Context
from bot.phone_tables import table
from bot.report_callbacks import BranchTap, BranchView, DecideStep, DecideTap, UnlockTap
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
from storage.decisions import (
    DecisionError,
    confirm_exception,
    pending_exception,
    preview,
    request_exception,
    unlock_grade,
)
from storage.grading import GradingError, decide_grade
from storage.pending import clear_pending, set_pending
from storage.tallies import BranchTally, RoundTally, round_tally
from surveys.decisions import Violation
from surveys.i18n import t
from surveys.rules import GRADE_ORDER, Grade

OVERRIDE = "override"
EXCEPTION = "exception"
UNLOCK = "unlock"
GRADING_KINDS = frozenset({OVERRIDE, EXCEPTION, UNLOCK})


def _grade_buttons(
    branch: BranchTally, locale: str, waiting: tuple[Grade, str, int | None] | None
) -> InlineKeyboardMarkup | None:
    """Unlock a locked grade; confirm another's exception; else see the effect of a grade."""
    decision = branch.decision
    if decision is not None and decision.locked:
        return InlineKeyboardMarkup(
            [[button(t("grading.unlock_button", locale), UnlockTap(branch.org_id))]]
        )
    rows = []
    if waiting is not None:
        grade = views.grade_name(waiting[0], locale)
        tap = DecideTap(branch.org_id, waiting[0], DecideStep.CONFIRM_EXCEPTION)
        rows.append([button(t("grading.exception_confirm_button", locale, grade=grade), tap)])
    proposal = branch.proposal
    if proposal is None:
        return InlineKeyboardMarkup(rows) if rows else None
    confirm = button(
        t("report.confirm_button", locale, grade=views.grade_name(proposal.grade, locale)),
        DecideTap(branch.org_id, proposal.grade, DecideStep.ASK),
    )
    others = [
        button(
            t("report.change_button", locale, grade=views.grade_name(grade, locale)),
            DecideTap(branch.org_id, grade, DecideStep.ASK),
        )
        for grade in GRADE_ORDER
        if grade is not proposal.grade
    ]
    return InlineKeyboardMarkup([*rows, [confirm], others])


def _grades_overview(session: Session, request: Request) -> Answer:
    tally = round_tally(
        session,
        round_id=request.round_id,
        org_ids=request.scope.organizer_orgs,
        now=request.now,
        details=False,
    )
    locale = request.locale
    buttons = [
        button(views.short_name(b.name, 12), BranchTap(BranchView.GRADE, b.org_id))
        for b in tally.branches
    ]
    text = views.grades_header(tally, locale) + "\n" + _overview_table(tally, locale)
    return Answer.text(text, keyboard(buttons, per_row=3) if buttons else None)


def _overview_table(tally: RoundTally, locale: str) -> str:
    """Score, state and name of each scored branch (name last, issue 14); the rest in a line."""
    listed = [branch for branch in tally.branches if views.scored_or_decided(branch)]
    rows = []
    for branch in listed:
        state = views.grade_cell(branch, locale)
        if branch.decision is not None and branch.decision.locked:
            state = "🔒" + state
        elif branch.proposal is not None and branch.proposal.tie_at_edge:
            state += "⚠"
        rows.append([views.score(branch.grading_score), state, views.short_name(branch.name)])
    header = [t(f"report.col.{key}", locale) for key in ("score", "grade", "name")]
    lines = table(header, rows, "rl")
    return views.pre(views.with_unscored(lines, len(listed), len(tally.branches), locale))


def _grade_detail(session: Session, request: Request, org_id: int) -> Answer:
    tally = round_tally(session, round_id=request.round_id, org_ids=[org_id], now=request.now)
    branch = tally.branch(org_id)
    if branch is None:
        return Answer.text(t("report.branch_not_in_round", request.locale))
    waiting = pending_exception(session, round_id=request.round_id, org_id=org_id)
    text = (
        views.grades_header(tally, request.locale)
        + "\n\n"
        + views.grade_line(branch, request.locale)
    )
    if waiting is not None:
        text += "\n" + t(
            "grading.exception_waiting",
            request.locale,
            grade=views.grade_name(waiting[0], request.locale),
            reason=views.esc(waiting[1]),
        )
    return Answer.text(text, _grade_buttons(branch, request.locale, waiting))


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
    """An old 确认 button (before the confirmation step): show the effect first."""
    request = request_of(session, update, context, "grade.confirm", organizer)
    _organized(session, update, request, org_id, "grade.confirm")
    branch = round_tally(
        session, round_id=request.round_id, org_ids=[org_id], now=request.now
    ).branch(org_id)
    if branch is None or branch.proposal is None:
        return Answer.text(t("report.error.no_proposal", request.locale))
    return _preview_answer(session, request, org_id, branch.proposal.grade)


def _violation_text(violation: Violation, locale: str) -> str:
    return "· " + t(
        f"grading.violation.{violation.kind.value}",
        locale,
        limit=violation.limit,
        actual=violation.actual,
    )


def _preview_answer(session: Session, request: Request, org_id: int, grade: Grade) -> Answer:
    """The effect of locking this grade on the pool, before the tap (issue 14)."""
    locale = request.locale
    try:
        found = preview(
            session, round_id=request.round_id, org_id=org_id, grade=grade, now=request.now
        )
    except DecisionError as error:
        return Answer.text(t(f"grading.error.{error.code}", locale))
    name = views.esc(found.branch.name)
    lines = [t("grading.confirm_title", locale, name=name, grade=views.grade_name(grade, locale))]
    pool = found.pool
    if pool is not None and pool.complete:
        lines.append(
            t(
                "grading.confirm_effect",
                locale,
                good=found.good,
                max_good=pool.max_good,
                poor=found.poor,
                min_poor=pool.min_poor,
            )
        )
    else:
        lines.append(t("grading.confirm_effect_provisional", locale))
    proposal = found.branch.proposal
    if found.open:
        violations = "\n".join(_violation_text(v, locale) for v in found.open)
        lines.append(t("grading.exception_needed", locale, violations=violations))
        tap = DecideTap(org_id, grade, DecideStep.EXCEPTION)
        label = "grading.exception_button"
    elif proposal is not None and proposal.grade is grade:
        lines.append(t("grading.confirm_ok", locale))
        tap, label = DecideTap(org_id, grade, DecideStep.LOCK), "grading.lock_button"
    else:
        lines.append(t("grading.confirm_ok", locale))
        tap, label = DecideTap(org_id, grade, DecideStep.REASON), "grading.reason_lock_button"
    back = button(t("grading.back_button", locale), BranchTap(BranchView.GRADE, org_id))
    markup = InlineKeyboardMarkup([[button(t(label, locale), tap)], [back]])
    return Answer.text("\n".join(lines), markup)


def decide_tap(session: Session, update: Update, context: Context, tap: DecideTap) -> Answer:
    """A step of deciding a grade: effect, lock, reason, exception, second confirmation."""
    action = "grade.exception" if tap.step is DecideStep.CONFIRM_EXCEPTION else "grade.confirm"
    request = request_of(session, update, context, action, organizer)
    _organized(session, update, request, tap.org_id, action)
    match tap.step:
        case DecideStep.ASK:
            return _preview_answer(session, request, tap.org_id, tap.grade)
        case DecideStep.LOCK:
            return _lock(session, request, tap.org_id, tap.grade)
        case DecideStep.REASON:
            return start_override(session, update, context, tap.org_id, tap.grade)
        case DecideStep.EXCEPTION:
            return _ask_text(session, request, EXCEPTION, tap.org_id, tap.grade)
        case DecideStep.CONFIRM_EXCEPTION:
            return _confirm_exception(session, request, tap.org_id)


def _lock(session: Session, request: Request, org_id: int, grade: Grade) -> Answer:
    try:
        decision = decide_grade(
            session,
            round_id=request.round_id,
            org_id=org_id,
            person_id=request.person_id,
            now=request.now,
            grade=grade,
        )
    except GradingError as error:
        return grading_error(error, request.locale)
    except DecisionError as error:
        return Answer.text(t(f"grading.error.{error.code}", request.locale))
    name = name_of(session, org_id)
    shown = views.grade_name(decision.final_grade, request.locale)
    return Answer.text(t("report.confirmed", request.locale, name=views.esc(name), grade=shown))


def _ask_text(session: Session, request: Request, kind: str, org_id: int, grade: Grade) -> Answer:
    """Wait for the reason of an exception or an unlock as the next text message."""
    set_pending(
        session,
        person_id=request.person_id,
        kind=kind,
        data={"round_id": request.round_id, "org_id": org_id, "grade": grade.value},
        now=request.now,
    )
    name = views.esc(name_of(session, org_id))
    key = "grading.ask_exception_reason" if kind == EXCEPTION else "grading.ask_unlock_reason"
    return Answer.text(
        t(key, request.locale, name=name, grade=views.grade_name(grade, request.locale))
    )


def _confirm_exception(session: Session, request: Request, org_id: int) -> Answer:
    """The second organizer confirms: the exception rows, then the locked decision."""
    locale = request.locale
    try:
        grade, reason, _ = confirm_exception(
            session,
            round_id=request.round_id,
            org_id=org_id,
            person_id=request.person_id,
            now=request.now,
        )
        decision = decide_grade(
            session,
            round_id=request.round_id,
            org_id=org_id,
            person_id=request.person_id,
            now=request.now,
            grade=grade,
            reason=reason,
        )
    except DecisionError as error:
        text = t(f"grading.error.{error.code}", locale)
        return Answer(texts=[text], toast=text, alert=True)
    except GradingError as error:
        return grading_error(error, locale)
    return Answer.text(
        t(
            "grading.exception_confirmed",
            locale,
            name=views.esc(name_of(session, org_id)),
            grade=views.grade_name(decision.final_grade, locale),
        )
    )


def unlock_tap(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap 解锁: ask for the reason (docs/rules.md §8.3)."""
    request = request_of(session, update, context, "grade.unlock", organizer)
    _organized(session, update, request, org_id, "grade.unlock")
    return _ask_text(session, request, UNLOCK, org_id, Grade.GOOD)


def continue_grading(
    session: Session, request: Request, kind: str, data: dict[str, Any], text: str
) -> Answer:
    """The typed reason of a waiting override, exception or unlock."""
    if kind == OVERRIDE:
        return continue_override(session, request, data, text)
    org_id = int(data["org_id"])
    clear_pending(session, person_id=request.person_id)
    if not request.scope.organizes(org_id):
        return Answer.text(t("report.refused", request.locale))
    name = views.esc(name_of(session, org_id))
    try:
        if kind == EXCEPTION:
            grade = Grade(str(data["grade"]))
            request_exception(
                session,
                round_id=int(data["round_id"]),
                org_id=org_id,
                grade=grade,
                reason=text,
                person_id=request.person_id,
                now=request.now,
            )
            return Answer.text(
                t(
                    "grading.exception_requested",
                    request.locale,
                    name=name,
                    grade=views.grade_name(grade, request.locale),
                    reason=views.esc(text.strip()),
                )
            )
        unlock_grade(
            session,
            round_id=int(data["round_id"]),
            org_id=org_id,
            reason=text,
            person_id=request.person_id,
            now=request.now,
        )
    except DecisionError as error:
        return Answer.text(t(f"grading.error.{error.code}", request.locale))
    return Answer.text(
        t("grading.unlocked", request.locale, name=name, reason=views.esc(text.strip()))
    )


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
