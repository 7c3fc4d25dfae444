"""County review of decided grades (docs/rules.md §9, seed 001 六): /report, /review, /finalize.

* ``/report`` (组织员): every decided grade of the asker's branches goes to the county
  (上报), with the 附件4 workbook of those branches as the report document. A grade the
  county returned and the committee decided again is reported again (重新评定, then 上报).
* ``/review`` (县委组织部): the grades waiting for review; ``/review 通过 <branch|全部>``
  approves, ``/review 退回 <branch> <reason>`` returns one with its reason; the committee's
  organizers are told, and the grade can be decided again.
* ``/finalize`` (组织员): approved grades become final (正式确定).
* ``/regrade``: in a quarterly re-grading (docs/rules.md §11), each 两新 branch's previous
  grade, its new one and the movement (晋位/降级/持平); unsampled branches carry theirs forward.

Each step is checked by ``surveys.review`` and audited by ``storage.review``.
"""

from __future__ import annotations

import io

from telegram import Update

from bot import report_views as views
from bot.common import Context
from bot.reports.common import Answer, Request, args_of, match_branch, organizer, request_of, run
from storage.db import Session
from storage.reports import org_names
from storage.review import ReviewStatus, review, review_statuses, round_regrade, tell_reviewers
from surveys.i18n import t
from surveys.review import ReviewAction, ReviewError, ReviewState

_APPROVE_WORDS = frozenset({"通过", "通過", "approve", "ok"})
_RETURN_WORDS = frozenset({"退回", "return"})
_ALL_WORDS = frozenset({"全部", "all"})


def _reviewer(scope: object) -> bool:
    return bool(getattr(scope, "reviewer_orgs", frozenset()))


def _line(status: ReviewStatus, name: str, locale: str) -> str:
    return t(
        "review.line",
        locale,
        name=views.esc(name),
        grade=t(f"grade.{status.grade.value}", locale),
        state=t(f"review.state.{status.state.value}", locale),
    )


def _step(session: Session, request: Request, org_id: int, action: ReviewAction, **kw: str) -> None:
    review(
        session,
        round_id=request.round_id,
        org_id=org_id,
        action=action,
        person_id=request.person_id,
        now=request.now,
        reason=kw.get("reason"),
    )


# --- /report (上报) ---------------------------------------------------------------------------


def report_answer(session: Session, update: Update, context: Context) -> Answer:
    """/report: report every decided grade of the asker's branches, with the 附件4 workbook."""
    request = request_of(session, update, context, "review.report", organizer)
    mine = request.scope.organizer_orgs
    statuses = review_statuses(session, round_id=request.round_id, org_ids=mine)
    reported: list[int] = []
    for org_id, status in sorted(statuses.items()):
        if status.state is ReviewState.RETURNED and status.redecided:
            reason = t("review.redecided_reason", request.locale)
            _step(session, request, org_id, ReviewAction.REDECIDE, reason=reason)
        elif status.state is not ReviewState.DECIDED:
            continue
        _step(session, request, org_id, ReviewAction.REPORT)
        reported.append(org_id)
    undecided = len(mine) - len(statuses)
    tell_reviewers(session, round_id=request.round_id, org_ids=reported, now=request.now)
    if not reported:
        return Answer.text(t("review.nothing_to_report", request.locale, undecided=undecided))
    # Loaded on demand: the running bot need not hold the file libraries (test_lean_imports).
    from bot.workbook import build_workbook

    workbook = build_workbook(
        session,
        round_id=request.round_id,
        locale=request.locale,
        org_ids=frozenset(reported),
        zone=request.zone,
        now=request.now,
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    filename = t("review.filename", request.locale, round=request.round_name)
    text = t("review.reported", request.locale, count=len(reported), undecided=undecided)
    return Answer(texts=[text], document=(buffer.getvalue(), filename))


async def report_command(update: Update, context: Context) -> None:
    """/report."""
    await run(update, context, lambda session: report_answer(session, update, context))


# --- /review (审核) ---------------------------------------------------------------------------


def _waiting(session: Session, request: Request) -> Answer:
    statuses = review_statuses(
        session, round_id=request.round_id, org_ids=request.scope.reviewer_orgs
    )
    names = org_names(session=session, org_ids=list(statuses))
    lines = [t("review.title", request.locale, round=views.esc(request.round_name))]
    shown = sorted(statuses.values(), key=lambda s: names.get(s.org_id, ""))
    lines += [_line(status, names.get(status.org_id, ""), request.locale) for status in shown]
    if not shown:
        lines.append(t("review.none_waiting", request.locale))
    lines.append(t("review.usage", request.locale))
    return Answer.text("\n".join(lines))


def _targets(session: Session, request: Request, query: str) -> list[int] | None:
    """The reported branches a query names ('全部': all of them); None when unknown."""
    statuses = review_statuses(
        session, round_id=request.round_id, org_ids=request.scope.reviewer_orgs
    )
    reported = [o for o, s in statuses.items() if s.state is ReviewState.REPORTED]
    if query.strip().lower() in _ALL_WORDS:
        return sorted(reported)
    found = match_branch(org_names(session=session, org_ids=list(statuses)), query)
    return found if len(found) == 1 else None


def review_answer(session: Session, update: Update, context: Context, args: list[str]) -> Answer:
    """/review [通过 <branch|全部> | 退回 <branch> <reason>]."""
    request = request_of(session, update, context, "review.review", _reviewer)
    if not args:
        return _waiting(session, request)
    verb = args[0].lower()
    if verb in _APPROVE_WORDS and len(args) >= 2:
        action, query, reason = ReviewAction.APPROVE, " ".join(args[1:]), None
    elif verb in _RETURN_WORDS and len(args) >= 2:
        action, query = ReviewAction.RETURN, args[1]
        reason = " ".join(args[2:]).strip()
        if not reason:
            return Answer.text(t("review.error.reason_required", request.locale))
    else:
        return Answer.text(t("review.usage", request.locale))
    targets = _targets(session, request, query)
    if not targets:
        return Answer.text(t("review.error.unknown_branch", request.locale))
    try:
        # Only '全部' names several, all of them reported: a refusal comes before any write.
        for org_id in targets:
            _step(session, request, org_id, action, reason=reason or "")
    except ReviewError as error:
        return Answer.text(t(f"review.error.{error.code}", request.locale))
    done = t(f"review.done.{action.value}", request.locale, count=len(targets))
    answer = _waiting(session, request)
    answer.texts.insert(0, done)
    return answer


async def review_command(update: Update, context: Context) -> None:
    """/review."""
    args = args_of(context)
    await run(update, context, lambda session: review_answer(session, update, context, args))


# --- /finalize (正式确定) --------------------------------------------------------------------


def finalize_answer(session: Session, update: Update, context: Context) -> Answer:
    """/finalize: approved grades of the asker's branches become final."""
    request = request_of(session, update, context, "review.finalize", organizer)
    statuses = review_statuses(
        session, round_id=request.round_id, org_ids=request.scope.organizer_orgs
    )
    names = org_names(session=session, org_ids=list(statuses))
    lines: list[str] = []
    for org_id, status in sorted(statuses.items(), key=lambda item: names.get(item[0], "")):
        if status.state is ReviewState.APPROVED:
            _step(session, request, org_id, ReviewAction.FINALIZE)
            status = review_statuses(session, round_id=request.round_id, org_ids=[org_id])[org_id]
        lines.append(_line(status, names.get(org_id, ""), request.locale))
    if not lines:
        lines.append(t("review.none_decided", request.locale))
    return Answer.text("\n".join([t("review.finalize_title", request.locale), *lines]))


async def finalize_command(update: Update, context: Context) -> None:
    """/finalize."""
    await run(update, context, lambda session: finalize_answer(session, update, context))


# --- /regrade (季度重新评定) -------------------------------------------------------------------


def regrade_answer(session: Session, update: Update, context: Context) -> Answer:
    """/regrade: a quarterly round's 两新 branches, previous grade, new grade, movement (§11)."""
    request = request_of(session, update, context, "review.regrade")
    rows = round_regrade(session, round_id=request.round_id)
    if rows is None:
        return Answer.text(t("regrade.not_quarterly", request.locale))
    visible = [row for row in rows if request.scope.can_see(row.org_id)]
    names = org_names(session=session, org_ids=[row.org_id for row in visible])
    lines = [t("regrade.title", request.locale, round=views.esc(request.round_name))]
    dash = t("regrade.none", request.locale)
    for row in sorted(visible, key=lambda r: names.get(r.org_id, "")):
        key = "regrade.line" if row.sampled else "regrade.line_carried"
        lines.append(
            t(
                key,
                request.locale,
                name=views.esc(names.get(row.org_id, "")),
                previous=t(f"grade.{row.previous.value}", request.locale) if row.previous else dash,
                current=t(f"grade.{row.current.value}", request.locale) if row.current else dash,
                movement=t(f"regrade.movement.{row.movement.value}", request.locale)
                if row.movement
                else dash,
            )
        )
    return Answer.text("\n".join(lines))


async def regrade_command(update: Update, context: Context) -> None:
    """/regrade."""
    await run(update, context, lambda session: regrade_answer(session, update, context))
