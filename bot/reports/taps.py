"""Report taps and texts: decode a button, or answer the step a person is in the middle of."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ApplicationHandlerStop

from bot.common import Context, in_transaction, services, viewer_in
from bot.report_callbacks import (
    BadReportCallback,
    BranchTap,
    BranchView,
    CloseTap,
    DecideTap,
    ExportTap,
    FlagTap,
    OverrideTap,
    ReportTap,
    SignTap,
    UnlockTap,
    VetoConditionTap,
    decode,
)
from bot.reports.common import Answer, Refused, request_of, run, send
from bot.reports.files import export_answer
from bot.reports.flag_flows import FLAG, condition_tap, continue_flag, flag_tap
from bot.reports.grades import (
    GRADING_KINDS,
    confirm_grade,
    continue_grading,
    decide_tap,
    grade_tap,
    start_override,
    unlock_tap,
)
from bot.reports.ledger import close_tap, continue_rectification, ledger_tap, start_rectification
from bot.reports.publish import publish_tap, sign_tap
from bot.reports.secretary import invites_tap, notice_tap
from bot.reports.tallies import coverage_tap, tally_tap
from storage.db import Session
from storage.pending import clear_pending, pending_for
from surveys.i18n import t

_BRANCH_TAPS = {
    BranchView.TALLY: tally_tap,
    BranchView.COVERAGE: coverage_tap,
    BranchView.GRADE: grade_tap,
    BranchView.CONFIRM: confirm_grade,
    BranchView.PUBLISH: publish_tap,
    BranchView.LEDGER: ledger_tap,
    BranchView.LEDGER_ADD: start_rectification,
    BranchView.NOTICE: notice_tap,
    BranchView.INVITES: invites_tap,
}


def _dispatch(session: Session, update: Update, context: Context, tap: ReportTap) -> Answer:
    match tap:
        case ExportTap():
            return export_answer(session, update, context)
        case BranchTap(view=view, org_id=org_id):
            return _BRANCH_TAPS[view](session, update, context, org_id)
        case OverrideTap(org_id=org_id, grade=grade):
            return start_override(session, update, context, org_id, grade)
        case SignTap(org_id=org_id, capacity=capacity, digest=digest):
            return sign_tap(session, update, context, org_id, capacity, digest)
        case CloseTap(item_id=item_id):
            return close_tap(session, update, context, item_id)
        case DecideTap():
            return decide_tap(session, update, context, tap)
        case UnlockTap(org_id=org_id):
            return unlock_tap(session, update, context, org_id)
        case FlagTap():
            return flag_tap(session, update, context, tap)
        case VetoConditionTap():
            return condition_tap(session, update, context, tap)


def tap_answer(session: Session, update: Update, context: Context, data: str) -> Answer:
    """Answer a tap on a report button (roles re-checked by each step); a stale alert for
    data our buttons never produce."""
    try:
        tap = decode(data)
    except BadReportCallback:
        text = t("report.stale_button", viewer_in(session, update).locale)
        return Answer(toast=text, alert=True)
    return _dispatch(session, update, context, tap)


async def on_tap(update: Update, context: Context) -> None:
    """A tap on a report button."""
    query = update.callback_query
    if query is None or query.data is None:
        return
    data = query.data
    await run(update, context, lambda session: tap_answer(session, update, context, data))


# --- Text answering a waiting step ------------------------------------------------------------


def pending_text_answer(
    session: Session, update: Update, context: Context, text: str
) -> Answer | None:
    """The answer to a text when a report step waits for it; None when none does."""
    who = viewer_in(session, update)
    if who.person_id is None:
        return None
    pending = pending_for(session, person_id=who.person_id, now=services(context).now())
    if pending is None:
        return None
    if pending.kind == FLAG:  # /veto or /members_only: checks its own roles
        return continue_flag(session, update, context, who.person_id, pending.data, text)
    action = f"grade.{pending.kind}" if pending.kind in GRADING_KINDS else "rectify.add"
    try:
        request = request_of(session, update, context, action)
    except Refused as refused:
        clear_pending(session, person_id=who.person_id)
        return refused.answer
    if pending.kind in GRADING_KINDS:
        return continue_grading(session, request, pending.kind, pending.data, text)
    return continue_rectification(session, request, pending.data, text)


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
    await send(update, context, answer)
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
    await send(update, context, Answer.text(text))
    raise ApplicationHandlerStop
