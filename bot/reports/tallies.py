"""/tally, /coverage and /rank: live participation, scores and rankings of visible branches."""

from __future__ import annotations

from dataclasses import replace

from telegram import Update

from bot import coverage_views
from bot import report_views as views
from bot.common import Context
from bot.report_callbacks import BranchView, ExportTap
from bot.reports.common import (
    Answer,
    Request,
    args_of,
    button,
    keyboard,
    named_or_only_branch,
    request_of,
    run,
    seen_branch,
)
from bot.reports.secretary import branch_buttons
from bot.screen import mini_app_button
from storage.db import Session
from storage.instruments import pinned_instrument
from storage.participation import owing_people
from storage.rounds import get_round
from storage.tallies import RoundTally, round_tally
from surveys.grading import inspection_sheet
from surveys.i18n import t
from surveys.options import RoundOptions

# --- /tally -----------------------------------------------------------------------------------


def committee_only(tally: RoundTally, request: Request) -> RoundTally:
    """Proposals only for the branches the asker organizes (issue 14).

    A secretary or inspector sees the committee's decided grades, never a proposal the
    committee has not decided yet (建议等次 beside 评定等次 would read as two verdicts).
    """
    branches = [
        branch if request.scope.organizes(branch.org_id) else replace(branch, proposal=None)
        for branch in tally.branches
    ]
    return replace(tally, branches=branches)


def _branch_detail(session: Session, request: Request, org_id: int) -> Answer:
    # Only an organizer sees a proposal, which needs the whole pool; anyone else reads the
    # branch's own rows (its decided grade and status), not the county (issue 12).
    organizes = request.scope.organizes(org_id)
    tally = round_tally(
        session,
        round_id=request.round_id,
        org_ids=[org_id],
        now=request.now,
        proposals=organizes,
    )
    tally = committee_only(tally, request)
    branch = tally.branch(org_id)
    if branch is None:
        return Answer.text(t("report.branch_not_in_round", request.locale))
    options = RoundOptions.from_json(get_round(session, request.round_id).options)
    inspection = inspection_sheet(branch.category, options.institution_sheet)
    text = views.branch_tally_text(
        branch,
        tally,
        request.locale,
        self_instrument=pinned_instrument(
            session=session, round_id=request.round_id, instrument_id="self_evaluation"
        ),
        inspection_instrument=None
        if inspection is None
        else pinned_instrument(
            session=session, round_id=request.round_id, instrument_id=inspection
        ),
    )
    screen = mini_app_button(org_id, request.locale)  # the meeting screen (issue 13)
    buttons = ([screen] if screen is not None else []) + branch_buttons(request, org_id)
    return Answer.text(text, keyboard(buttons, per_row=1) if buttons else None)


def visible_tally(session: Session, request: Request) -> RoundTally:
    """The tally of every branch the asker may see (proposals only where they organize)."""
    tally = round_tally(
        session,
        round_id=request.round_id,
        org_ids=request.scope.visible_orgs,
        now=request.now,
        details=False,  # the tables show no per-indicator means
    )
    return committee_only(tally, request)


def tally_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/tally [branch]: one branch in full, or every visible branch in a compact table."""
    request = request_of(session, update, context, "report.tally")
    org_id = named_or_only_branch(session, update, request, query, "report.tally", BranchView.TALLY)
    if isinstance(org_id, Answer):
        return org_id
    if org_id is not None:
        return _branch_detail(session, request, org_id)
    tally = visible_tally(session, request)
    title = t("report.tally_title", request.locale, round=request.round_name)
    markup = keyboard([button(t("report.full_file_button", request.locale), ExportTap())])
    return Answer.text(views.township_table(tally, request.locale, title=title), markup)


def tally_tap(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap a branch offered by /tally: its full tally."""
    request = request_of(session, update, context, "report.tally")
    seen_branch(session, update, request, org_id, "report.tally")
    return _branch_detail(session, request, org_id)


async def tally_command(update: Update, context: Context) -> None:
    """/tally [branch]."""
    query = " ".join(args_of(context))
    await run(update, context, lambda session: tally_answer(session, update, context, query))


# --- /coverage ----------------------------------------------------------------------------


def coverage_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/coverage [branch]: the gap per branch, or a branch's non-respondents by name."""
    request = request_of(session, update, context, "report.coverage")
    org_id = named_or_only_branch(
        session, update, request, query, "report.coverage", BranchView.COVERAGE
    )
    if isinstance(org_id, Answer):
        return org_id
    if org_id is None:
        return Answer.text(
            coverage_views.coverage_table(visible_tally(session, request), request.locale)
        )
    return _branch_coverage(session, request, org_id)


def coverage_tap(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap a branch offered by /coverage: who has not answered there."""
    request = request_of(session, update, context, "report.coverage")
    seen_branch(session, update, request, org_id, "report.coverage")
    return _branch_coverage(session, request, org_id)


def _branch_coverage(session: Session, request: Request, org_id: int) -> Answer:
    branch = round_tally(  # participation only: the branch's own rows (issue 12)
        session,
        round_id=request.round_id,
        org_ids=[org_id],
        now=request.now,
        details=False,
        proposals=False,
    ).branch(org_id)
    if branch is None:
        return Answer.text(t("report.branch_not_in_round", request.locale))
    owing = owing_people(session, round_id=request.round_id, org_id=org_id)
    text = coverage_views.branch_coverage_text(branch, owing, request.locale)
    buttons = branch_buttons(request, org_id)  # the WeChat notice and the links (issue 14)
    return Answer.text(text, keyboard(buttons, per_row=1) if buttons else None)


async def coverage_command(update: Update, context: Context) -> None:
    """/coverage [branch]."""
    query = " ".join(args_of(context))
    await run(update, context, lambda session: coverage_answer(session, update, context, query))


# --- /rank --------------------------------------------------------------------------------


async def rank_command(update: Update, context: Context) -> None:
    """/rank: rankings by score and by inspection, with ties."""

    def work(session: Session) -> Answer:
        request = request_of(session, update, context, "report.rank")
        return Answer.text(views.ranking_text(visible_tally(session, request), request.locale))

    await run(update, context, work)
