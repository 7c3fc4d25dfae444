"""/rectify: a branch's rectification ledger (整改台账); add a line field by field, close one.

Adding waits for four texts in turn (``storage.pending``, kind 'rectify'). A branch lists 2–3
key problems (seed 002 三(三)1, docs/rules.md §12); the view says how many are still needed.
Only the township (an organizer) closes a line, after checking it, with a note (逐项验收销号,
seed 003): the close button asks for that note, then closes.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from telegram import Update

from bot import report_views as views
from bot.common import Context
from bot.report_callbacks import BranchTap, BranchView, CloseTap
from bot.reports.common import (
    Answer,
    Request,
    args_of,
    button,
    choose_from,
    grading_error,
    keyboard,
    ledger_keeper,
    name_of,
    named_or_only_branch,
    refuse,
    request_of,
    run,
    seen_branch,
)
from storage.db import Session
from storage.grading import (
    GradingError,
    add_rectification,
    close_rectification,
    key_problems,
    ledger,
    ledger_checks,
)
from storage.models import RectificationItem
from storage.pending import clear_pending, set_pending
from storage.reports import rectification_item
from surveys.categories import Role
from surveys.deadlines import parse_due_date
from surveys.i18n import t
from surveys.review import KEY_PROBLEMS, key_problems_check

RECTIFY = "rectify"
RECTIFY_STEPS = ("matter", "measures", "due_on", "responsible")


def _key_problems_line(session: Session, request: Request, org_id: int) -> str | None:
    """How many key problems this round's ledger still needs (2–3, docs/rules.md §12)."""
    count = key_problems(session, round_id=request.round_id, org_id=org_id)
    verdict = key_problems_check(count)
    low, high = KEY_PROBLEMS
    if verdict == "too_few":
        return t("ledger.key_problems_needed", request.locale, count=count, needed=low - count)
    if verdict == "too_many":
        return t("ledger.key_problems_too_many", request.locale, count=count, high=high)
    return None


def _check_lines(session: Session, request: Request, items: list[RectificationItem]) -> list[str]:
    """The township's check notes of the closed lines."""
    checks = ledger_checks(session, item_ids=[i.id for i in items if i.id is not None])
    return [
        t("ledger.check_line", request.locale, number=number, note=views.esc(checks[i.id].note))
        for number, i in enumerate(items, start=1)
        if i.id in checks
    ]


def _ledger_view(session: Session, request: Request, org_id: int) -> Answer:
    items = ledger(session, org_ids=[org_id])
    zone = request.zone
    today = request.now.astimezone(zone).date()
    text = views.ledger_text(name_of(session, org_id), items, today, zone, request.locale)
    extra = _check_lines(session, request, items)
    needed = _key_problems_line(session, request, org_id)
    if needed is not None:
        extra.append(needed)
    if extra:
        text = "\n".join([text, *extra])
    buttons = []
    if request.scope.keeps_ledger_of(org_id):
        add = BranchTap(BranchView.LEDGER_ADD, org_id)
        buttons.append(button(t("report.ledger_add_button", request.locale), add))
    if request.scope.organizes(org_id):  # only the township closes (销号)
        for number, item in enumerate(items, start=1):
            if item.closed_at is None and item.id is not None:
                label = t("report.ledger_close_button", request.locale, number=number)
                buttons.append(button(label, CloseTap(item.id)))
    return Answer.text(text, keyboard(buttons, per_row=2) if buttons else None)


def rectify_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/rectify [branch]: the ledger, with buttons to add a line or close one (销号)."""
    request = request_of(session, update, context, "rectify.view")
    org_id = named_or_only_branch(
        session, update, request, query, "rectify.view", BranchView.LEDGER
    )
    if isinstance(org_id, Answer):
        return org_id
    if org_id is None:
        return choose_from(session, request, BranchView.LEDGER)
    return _ledger_view(session, request, org_id)


def ledger_tap(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap a branch offered by /rectify: its ledger."""
    request = request_of(session, update, context, "rectify.view")
    seen_branch(session, update, request, org_id, "rectify.view")
    return _ledger_view(session, request, org_id)


async def rectify_command(update: Update, context: Context) -> None:
    """/rectify [branch]."""
    query = " ".join(args_of(context))
    await run(update, context, lambda session: rectify_answer(session, update, context, query))


def start_rectification(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap 新增: ask for the 整改事项 first; the other fields follow as text messages."""
    request = request_of(session, update, context, "rectify.add", ledger_keeper)
    if not request.scope.keeps_ledger_of(org_id):
        raise refuse(session, update, request.viewer, "rectify.add", target=f"org:{org_id}")
    set_pending(
        session,
        person_id=request.person_id,
        kind=RECTIFY,
        data={"round_id": request.round_id, "org_id": org_id, "step": RECTIFY_STEPS[0]},
        now=request.now,
    )
    return Answer.text(t("report.ask.matter", request.locale))


def close_tap(session: Session, update: Update, context: Context, item_id: int) -> Answer:
    """Tap 销号: the township checks the line; ask for its 验收意见, then close it."""
    request = request_of(session, update, context, "rectify.close", ledger_keeper)
    item = rectification_item(session=session, item_id=item_id)
    if item is None or not request.scope.organizes(item.org_id):
        raise refuse(
            session,
            update,
            request.viewer,
            "rectify.close",
            "ledger.township_only",
            f"item:{item_id}",
        )
    if item.closed_at is not None:
        return grading_error(GradingError("already_closed"), request.locale)
    set_pending(
        session,
        person_id=request.person_id,
        kind=RECTIFY,
        data={"close": item_id, "org_id": item.org_id, "round_id": request.round_id},
        now=request.now,
    )
    return Answer.text(t("ledger.ask_note", request.locale, matter=views.esc(item.matter)))


def _finish_close(session: Session, request: Request, data: dict[str, Any], text: str) -> Answer:
    """The 验收意见 typed after 销号: close the line with it (the township only)."""
    org_id = int(data["org_id"])
    if not text.strip():
        return Answer.text(t("ledger.ask_note", request.locale, matter=""))
    clear_pending(session, person_id=request.person_id)
    if not request.scope.organizes(org_id):
        return Answer.text(t("ledger.township_only", request.locale))
    try:
        close_rectification(
            session,
            item_id=int(data["close"]),
            person_id=request.person_id,
            now=request.now,
            note=text,
            roles={Role.ORGANIZER.value},
        )
    except GradingError as error:
        return grading_error(error, request.locale)
    answer = _ledger_view(session, request, org_id)
    answer.texts.insert(0, t("report.ledger_closed_toast", request.locale))
    return answer


def continue_rectification(
    session: Session, request: Request, data: dict[str, Any], text: str
) -> Answer:
    """One typed field of a ledger line being added; the line is written after the last."""
    if "close" in data:
        return _finish_close(session, request, data, text)
    person_id = request.person_id
    org_id = int(data["org_id"])
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
            session,
            person_id=person_id,
            kind=RECTIFY,
            data={**fields, "step": following},
            now=request.now,
        )
        return Answer.text(t(f"report.ask.{following}", request.locale))
    add_rectification(
        session,
        org_id=org_id,
        round_id=int(data["round_id"]),
        matter=str(fields["matter"]),
        measures=str(fields["measures"]),
        due_on=date.fromisoformat(str(fields["due_on"])),
        responsible=str(fields["responsible"]),
        person_id=person_id,
        now=request.now,
    )
    clear_pending(session, person_id=person_id)
    answer = _ledger_view(session, request, org_id)
    answer.texts.insert(0, t("report.ledger_added", request.locale))
    return answer
