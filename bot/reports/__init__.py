"""Reports and decisions for organizers, secretaries and inspectors, one module per feature.

Commands: /tally /coverage /rank (``tallies``), /grades (``grades``), /publish and the
sign-offs (``publish``), /report /review /finalize /regrade (``review``), /rectify (``ledger``),
/veto /members_only /rerun /waive (``flags``; the first two are the button flows of
``flag_flows``), /export /chart (``files``). Buttons carry typed
taps (``bot.report_callbacks``), dispatched in ``taps``; what every feature shares is in
``common``.

Steps that wait for typed text (an override's reason, the fields of a ledger line) keep
their state in the database (``storage.pending``). Their handlers come from
:func:`priority_handlers`, to be registered in group -1 so they see a text before the
survey answering does; they stop further handling only when a report step was waiting.
"""

from __future__ import annotations

from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.common import PRIVATE, MenuCommand
from bot.report_callbacks import CALLBACK_PATTERN
from bot.reports.files import chart_command, export_command
from bot.reports.flags import members_only_command, rerun_command, veto_command, waive_command
from bot.reports.grades import grades_command
from bot.reports.ledger import rectify_command
from bot.reports.publish import publish_command
from bot.reports.review import finalize_command, regrade_command, report_command, review_command
from bot.reports.tallies import coverage_command, rank_command, tally_command
from bot.reports.taps import on_cancel, on_pending_text, on_tap

_VIEWERS = frozenset(
    {"organizer", "secretary", "inspector", "work_group_leader", "county_reviewer"}
)
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
    MenuCommand("rerun", "grading.command.rerun", roles=frozenset({"organizer"})),
    MenuCommand("waive", "grading.command.waive", roles=frozenset({"organizer"})),
    MenuCommand("report", "review.command.report", roles=frozenset({"organizer"})),
    MenuCommand("finalize", "review.command.finalize", roles=frozenset({"organizer"})),
    MenuCommand("review", "review.command.review", roles=frozenset({"county_reviewer"})),
    MenuCommand("regrade", "review.command.regrade", roles=_VIEWERS),
)


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The handlers of the reports, in the order they must be registered."""
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
        CommandHandler("rerun", rerun_command, filters=PRIVATE),
        CommandHandler("waive", waive_command, filters=PRIVATE),
        CommandHandler("report", report_command, filters=PRIVATE),
        CommandHandler("review", review_command, filters=PRIVATE),
        CommandHandler("finalize", finalize_command, filters=PRIVATE),
        CommandHandler("regrade", regrade_command, filters=PRIVATE),
        CallbackQueryHandler(on_tap, pattern=CALLBACK_PATTERN),
    ]


def priority_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """Handlers for group -1: a text or /cancel while a report step waits for it."""
    return [
        CommandHandler("cancel", on_cancel, filters=PRIVATE),
        MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, on_pending_text),
    ]
