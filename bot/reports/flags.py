"""/veto, /members_only, /rerun and /waive: the organizer's decisions about a branch.

/veto and /members_only are button flows (``flag_flows``); /rerun and /waive take one line.
"""

from __future__ import annotations

from datetime import timedelta

from telegram import Update

from bot import report_views as views
from bot.common import Context
from bot.reports.common import (
    Answer,
    Request,
    args_of,
    name_of,
    organizer,
    pick_branch,
    refuse,
    request_of,
    run,
)
from bot.reports.flag_flows import members_only_answer, veto_answer
from storage.db import Session
from storage.remedies import RemedyError, order_rerun, waive_participation
from surveys.i18n import t


def _organized_branch(
    session: Session, update: Update, request: Request, args: list[str], action: str, usage: str
) -> int | Answer:
    """The branch named first in args, if the organizer's scope covers it; else the answer to give.

    Shared by the organizer's one-line commands that take a branch and at least one more word.
    """
    if len(args) < 2:
        return Answer.text(t(usage, request.locale))
    picked = pick_branch(session, update, request, args[0], action, None)
    if isinstance(picked, Answer):
        return picked
    if not request.scope.organizes(picked):
        raise refuse(session, update, request.viewer, action, target=f"org:{picked}")
    return picked


async def veto_command(update: Update, context: Context) -> None:
    """/veto [branch [condition [note]]]: the button flow of ``flag_flows``."""
    args = args_of(context)
    await run(update, context, lambda session: veto_answer(session, update, context, args))


async def members_only_command(update: Update, context: Context) -> None:
    """/members_only [branch [reason]]: the button flow of ``flag_flows``."""
    args = args_of(context)
    await run(update, context, lambda session: members_only_answer(session, update, context, args))


# --- 补测 and participation waivers (docs/rules.md §6.4) -----------------------------------

MAX_RERUN_DAYS = 60


def rerun_answer(session: Session, update: Update, context: Context, args: list[str]) -> Answer:
    """/rerun <branch> <days> <reason>: reopen the satisfaction survey for that branch."""
    request = request_of(session, update, context, "grade.rerun", organizer)
    usage = "grading.usage.rerun"
    picked = _organized_branch(session, update, request, args, "grade.rerun", usage)
    if isinstance(picked, Answer):
        return picked
    days = args[1] if len(args) > 2 else ""
    if not days.isdigit() or not 1 <= int(days) <= MAX_RERUN_DAYS:
        return Answer.text(t(usage, request.locale))
    deadline = request.now + timedelta(days=int(days))
    try:
        order_rerun(
            session,
            round_id=request.round_id,
            org_id=picked,
            deadline=deadline,
            reason=" ".join(args[2:]),
            person_id=request.person_id,
            now=request.now,
        )
    except RemedyError as error:
        return Answer.text(t(f"grading.error.{error.code}", request.locale))
    return Answer.text(
        t(
            "grading.rerun_done",
            request.locale,
            name=views.esc(name_of(session, picked)),
            deadline=views.local_time(deadline, request.zone),
        )
    )


async def rerun_command(update: Update, context: Context) -> None:
    """/rerun <branch> <days> <reason>."""
    args = args_of(context)
    await run(update, context, lambda session: rerun_answer(session, update, context, args))


def waive_answer(session: Session, update: Update, context: Context, args: list[str]) -> Answer:
    """/waive <branch> <reason>: grade a branch although its participation fell short."""
    request = request_of(session, update, context, "grade.waive_participation", organizer)
    usage = "grading.usage.waive"
    picked = _organized_branch(session, update, request, args, "grade.waive_participation", usage)
    if isinstance(picked, Answer):
        return picked
    try:
        row = waive_participation(
            session,
            round_id=request.round_id,
            org_id=picked,
            reason=" ".join(args[1:]),
            person_id=request.person_id,
            now=request.now,
        )
    except RemedyError as error:
        return Answer.text(t(f"grading.error.{error.code}", request.locale))
    return Answer.text(
        t(
            "grading.waiver_done",
            request.locale,
            name=views.esc(name_of(session, picked)),
            reason=views.esc(row.reason),
        )
    )


async def waive_command(update: Update, context: Context) -> None:
    """/waive <branch> <reason>."""
    args = args_of(context)
    await run(update, context, lambda session: waive_answer(session, update, context, args))
