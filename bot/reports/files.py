"""/export and /chart: the workbook and the charts of every branch the asker may see."""

from __future__ import annotations

import io

from telegram import Update

from bot.common import Context, audit
from bot.reports.common import Answer, request_of, run
from bot.reports.tallies import visible_tally
from storage.db import Session
from surveys.i18n import t


def export_answer(session: Session, update: Update, context: Context) -> Answer:
    """/export: the workbook of every branch the asker may see."""
    request = request_of(session, update, context, "report.export")
    # Loaded on demand: the running bot need not hold the file libraries (test_lean_imports).
    from bot.sheets import export_filename
    from bot.workbook import build_workbook

    workbook = build_workbook(
        session,
        round_id=request.round_id,
        locale=request.locale,
        org_ids=request.scope.visible_orgs,
        zone=request.zone,
        now=request.now,
        shows_proposal=request.scope.organizes,
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    audit(
        session,
        actor=request.actor,
        action="report.export",
        detail={"branches": len(request.scope.visible_orgs)},
    )
    filename = export_filename(request.round_name, request.locale)
    return Answer(
        texts=[t("report.export_ready", request.locale)], document=(buffer.getvalue(), filename)
    )


async def export_command(update: Update, context: Context) -> None:
    """/export."""
    await run(update, context, lambda session: export_answer(session, update, context))


def chart_answer(session: Session, update: Update, context: Context) -> Answer:
    """/chart: participation per branch against its target; scores and grades."""
    request = request_of(session, update, context, "report.chart")
    # Loaded on demand: the running bot need not hold the file libraries (test_lean_imports).
    from bot import charts

    tally = visible_tally(session, request)
    return Answer(
        texts=[t("report.chart_ready", request.locale)],
        photos=[
            charts.participation_chart(tally, request.locale),
            charts.score_chart(tally, request.locale),
        ],
    )


async def chart_command(update: Update, context: Context) -> None:
    """/chart."""
    await run(update, context, lambda session: chart_answer(session, update, context))
