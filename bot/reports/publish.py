"""/publish: the tally to announce at the branch meeting, and the two sign-offs under it."""

from __future__ import annotations

from collections.abc import Mapping

from telegram import InlineKeyboardButton, Update

from bot import report_views as views
from bot.common import Context
from bot.report_callbacks import BranchView, Capacity, SignTap
from bot.reports.common import (
    Answer,
    Request,
    args_of,
    button,
    choose_from,
    grading_error,
    keyboard,
    pick_branch,
    refuse,
    request_of,
    run,
    seen_branch,
    single_branch,
)
from bot.screen import mini_app_button  # the meeting screen's Mini App button (issue 13)
from storage.db import Session
from storage.grading import GradingError, sign, signatures
from storage.tallies import round_tally, satisfaction_instrument
from surveys.i18n import t


def _sign_buttons(
    request: Request, org_id: int, signed: Mapping[str, object]
) -> list[InlineKeyboardButton]:
    buttons = []
    if "secretary" not in signed and request.scope.is_secretary_of(org_id):
        tap = SignTap(org_id, Capacity.SECRETARY)
        buttons.append(button(t("report.sign_secretary_button", request.locale), tap))
    if "work_group_leader" not in signed and request.scope.leads_work_group_of(org_id):
        tap = SignTap(org_id, Capacity.WORK_GROUP_LEADER)
        buttons.append(button(t("report.sign_leader_button", request.locale), tap))
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
    return Answer.text(text, keyboard(buttons, per_row=1) if buttons else None)


def publish_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/publish [branch]: the tally to announce at the meeting, then the sign-off buttons."""
    request = request_of(session, update, context, "report.publish")
    org_id = single_branch(request) if not query else None
    if query or org_id is None:
        picked = pick_branch(
            session, update, request, query or "", "report.publish", BranchView.PUBLISH
        )
        if isinstance(picked, Answer):
            if not query:
                return choose_from(session, request, BranchView.PUBLISH)
            return picked
        org_id = picked
    return _publish_view(session, request, org_id)


def publish_tap(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap a branch offered by /publish: its sheet to announce."""
    request = request_of(session, update, context, "report.publish")
    seen_branch(session, update, request, org_id, "report.publish")
    return _publish_view(session, request, org_id)


async def publish_command(update: Update, context: Context) -> None:
    """/publish [branch]."""
    query = " ".join(args_of(context))
    await run(update, context, lambda session: publish_answer(session, update, context, query))


def sign_tap(
    session: Session, update: Update, context: Context, org_id: int, capacity: Capacity
) -> Answer:
    """Tap a sign-off button: 书记 for the branch's secretary, 工作组组长 for its leader."""
    request = request_of(session, update, context, "sign_off")
    allowed = (
        request.scope.is_secretary_of(org_id)
        if capacity is Capacity.SECRETARY
        else request.scope.leads_work_group_of(org_id)
    )
    if not allowed:
        raise refuse(session, update, request.viewer, "sign_off", target=f"org:{org_id}")
    try:
        sign(
            session,
            round_id=request.round_id,
            org_id=org_id,
            role=capacity.role,
            person_id=request.person_id,
            now=request.now,
        )
    except GradingError as error:
        return grading_error(error, request.locale)
    answer = _publish_view(session, request, org_id)
    answer.toast = t("report.signed_toast", request.locale)
    return answer
