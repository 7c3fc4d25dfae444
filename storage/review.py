"""County review of decided grades, and the previous grades a quarterly re-grading carries.

docs/rules.md §9 (seed 001 六: 镇党委评定、县委组织部审核): a decided grade is reported
(上报), approved or returned with a reason by the county reviewer, and made final. Each
step is checked by ``surveys.review.review_step``, stored as a ``ReviewEvent`` (the latest
is the state, the rows the history) and audited in the same transaction.

docs/rules.md §11 (seed 002 重新评定等级): a quarterly round re-grades sampled 两新
branches and carries each other branch's last final grade forward.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from storage import audit
from storage.grading import GradingError
from storage.models import (
    GradeDecision,
    Organization,
    ReviewEvent,
    Round,
)
from storage.outbox import NewMessage, enqueue
from storage.rounds import branches_in_scope
from storage.scope import holders_of
from surveys.categories import Category, Role
from surveys.i18n import t
from surveys.options import RoundOptions
from surveys.review import (
    Regrade,
    ReviewAction,
    ReviewError,
    ReviewState,
    RoundKind,
    regrade,
    review_step,
)
from surveys.rules import Grade


@dataclass(frozen=True)
class ReviewStatus:
    """Where one branch's grade stands in the county review."""

    org_id: int
    state: ReviewState
    grade: Grade
    reason: str | None  # the reason of the last step (a return's reason)
    redecided: bool = False  # returned, then decided again by the committee


def _decided(session: Session, round_id: int) -> dict[int, GradeDecision]:
    rows = session.exec(
        select(GradeDecision).where(
            GradeDecision.round_id == round_id, col(GradeDecision.final_grade).is_not(None)
        )
    ).all()
    return {row.org_id: row for row in rows}


def _latest_events(session: Session, round_id: int) -> dict[int, ReviewEvent]:
    rows = session.exec(
        select(ReviewEvent)
        .where(ReviewEvent.round_id == round_id)
        .order_by(col(ReviewEvent.at), col(ReviewEvent.id))
    ).all()
    return {row.org_id: row for row in rows}


def review_statuses(
    session: Session, *, round_id: int, org_ids: Collection[int] | None = None
) -> dict[int, ReviewStatus]:
    """The review state of every decided branch of the round (undecided ones are absent)."""
    decided = _decided(session, round_id)
    events = _latest_events(session, round_id)
    found: dict[int, ReviewStatus] = {}
    for org_id, decision in decided.items():
        if org_ids is not None and org_id not in org_ids:
            continue
        grade = Grade(decision.final_grade or decision.proposed_grade)
        event = events.get(org_id)
        if event is None:
            found[org_id] = ReviewStatus(org_id, ReviewState.DECIDED, grade, None)
            continue
        state = ReviewState(event.after)
        redecided = (
            state is ReviewState.RETURNED
            and decision.locked
            and decision.decided_at is not None
            and decision.decided_at > event.at
        )
        found[org_id] = ReviewStatus(org_id, state, grade, event.reason, redecided)
    return found


def review_history(session: Session, *, round_id: int, org_id: int) -> list[ReviewEvent]:
    """Every step of a branch's review, oldest first."""
    return list(
        session.exec(
            select(ReviewEvent)
            .where(ReviewEvent.round_id == round_id, ReviewEvent.org_id == org_id)
            .order_by(col(ReviewEvent.at), col(ReviewEvent.id))
        ).all()
    )


def _roles_for(session: Session, person_id: int, org_id: int) -> set[str]:
    """The person's roles that reach this branch (held there or above it)."""
    return {
        role.value
        for role in (Role.ORGANIZER, Role.COUNTY_REVIEWER)
        if org_id in branches_in_scope(session, person_id=person_id, role=role)
    }


def review(
    session: Session,
    *,
    round_id: int,
    org_id: int,
    action: ReviewAction,
    person_id: int,
    now: datetime,
    reason: str | None = None,
) -> ReviewStatus:
    """One review step of one branch: checked, stored, audited; ReviewError says why not."""
    status = review_statuses(session, round_id=round_id, org_ids=[org_id]).get(org_id)
    if status is None:
        raise ReviewError("not_decided")
    roles = _roles_for(session, person_id, org_id)
    step = review_step(status.state, action, person_id=person_id, roles=roles, reason=reason)
    if step.action is ReviewAction.RETURN:
        _reopen_decision(session, round_id, org_id)
    session.add(
        ReviewEvent(
            round_id=round_id,
            org_id=org_id,
            action=step.action.value,
            after=step.after.value,
            grade=status.grade.value,
            reason=step.reason[:500] if step.reason else None,
            person_id=person_id,
            at=now,
        )
    )
    audit.record(
        session=session,
        action=f"review.{step.action.value}",
        at=now,
        actor_person_id=person_id,
        target=f"org:{org_id}",
        detail={
            "round_id": round_id,
            "before": step.before.value,
            "after": step.after.value,
            "grade": status.grade.value,
            "reason": step.reason,
        },
    )
    session.flush()
    if step.action is ReviewAction.RETURN:
        _tell_committee(session, round_id, org_id, status.grade, step.reason or "", now)
    return review_statuses(session, round_id=round_id, org_ids=[org_id])[org_id]


def _reopen_decision(session: Session, round_id: int, org_id: int) -> None:
    """A returned grade goes back to the committee: its decision can be made again."""
    decision = session.get(GradeDecision, (round_id, org_id))
    if decision is None:
        raise GradingError("no_proposal")
    decision.locked = False
    session.add(decision)


def _tell_committee(
    session: Session, round_id: int, org_id: int, grade: Grade, reason: str, now: datetime
) -> None:
    """Queue the return and its reason to every organizer of the branch who uses the bot."""
    org = session.get(Organization, org_id)
    for recipient in holders_of(session, role=Role.ORGANIZER, org_ids=[org_id]):
        text = t(
            "review.returned_notice",
            recipient.locale,
            name=org.name if org else "",
            grade=t(f"grade.{grade.value}", recipient.locale),
            reason=reason,
        )
        message = NewMessage(
            round_id=round_id,
            person_id=recipient.person_id,
            chat_id=recipient.chat_id,
            kind="review_returned",
            slot=f"{org_id}:{now.isoformat()}",
            payload={"text": text},
            not_before=now,
        )
        enqueue(session, message=message, now=now)


def tell_reviewers(
    session: Session, *, round_id: int, org_ids: Collection[int], now: datetime
) -> int:
    """Queue a notice of newly reported grades to each county reviewer who reviews them."""
    told = 0
    for recipient in holders_of(session, role=Role.COUNTY_REVIEWER, org_ids=org_ids):
        mine = set(org_ids) & set(
            branches_in_scope(session, person_id=recipient.person_id, role=Role.COUNTY_REVIEWER)
        )
        text = t("review.reported_notice", recipient.locale, count=len(mine))
        message = NewMessage(
            round_id=round_id,
            person_id=recipient.person_id,
            chat_id=recipient.chat_id,
            kind="review_reported",
            slot=now.isoformat(),
            payload={"text": text},
            not_before=now,
        )
        told += enqueue(session, message=message, now=now)
    return told


# --- Quarterly re-grading (docs/rules.md §11) ------------------------------------------------


def previous_grades(
    session: Session, *, round_id: int, org_ids: Collection[int]
) -> dict[int, Grade | None]:
    """Each branch's last final grade before this round (None: never graded, 首次定级).

    A grade made final through the county review wins; else the committee's decision.
    """
    earlier = session.exec(select(Round.id).where(col(Round.id) < round_id)).all()
    found: dict[int, Grade | None] = dict.fromkeys(org_ids)
    if not earlier:
        return found
    rows = session.exec(
        select(GradeDecision)
        .where(
            col(GradeDecision.round_id).in_(list(earlier)),
            col(GradeDecision.org_id).in_(list(org_ids)),
            col(GradeDecision.final_grade).is_not(None),
        )
        .order_by(col(GradeDecision.round_id))
    ).all()
    for row in rows:
        found[row.org_id] = Grade(str(row.final_grade))
    finals = session.exec(
        select(ReviewEvent)
        .where(
            col(ReviewEvent.round_id).in_(list(earlier)),
            col(ReviewEvent.org_id).in_(list(org_ids)),
            ReviewEvent.after == ReviewState.FINAL.value,
        )
        .order_by(col(ReviewEvent.round_id), col(ReviewEvent.at))
    ).all()
    for event in finals:
        if event.grade is not None:
            found[event.org_id] = Grade(event.grade)
    return found


def round_regrade(session: Session, *, round_id: int) -> list[Regrade] | None:
    """The re-grading of a quarterly round (None for an annual one): previous, new, movement."""
    round_ = session.get(Round, round_id)
    if round_ is None:
        return None
    options = RoundOptions.from_json(round_.options)
    if options.kind is not RoundKind.QUARTERLY_REGRADE:
        return None
    orgs = session.exec(select(Organization.id, Organization.category)).all()
    pool = [
        org_id
        for org_id, category in orgs
        if org_id is not None and _in_pool(options, Category(category))
    ]
    sample = set(options.sample) & set(pool) if options.sample is not None else set(pool)
    decided = {
        org_id: Grade(str(decision.final_grade))
        for org_id, decision in _decided(session, round_id).items()
        if org_id in sample
    }
    previous = previous_grades(session, round_id=round_id, org_ids=pool)
    return regrade(previous, sample, decided)


def _in_pool(options: RoundOptions, category: Category) -> bool:
    scope = options.scope
    return scope is not None and category in scope
