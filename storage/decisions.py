"""Decisions checked against their pool: quotas, vetoes, status; exceptions and unlock.

docs/rules.md §8: before a grade is locked, the intended grades of its pool are checked
with ``surveys.decisions.check_decisions``. A decision that breaks a rule stands only with
a reason and a second organizer's confirmation (``DecisionExceptionRow``); a locked grade
is unlocked only with a reason. Every step writes an audit row in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from storage import audit
from storage.models import DecisionExceptionRow, GradeDecision, Organization, Person
from storage.outbox import NewMessage, enqueue
from storage.scope import holders_of
from storage.tallies import BranchTally, RoundTally, round_tally
from surveys.categories import Role
from surveys.decisions import (
    DecisionException,
    Violation,
    ViolationKind,
    check_decisions,
    unresolved,
)
from surveys.grading import PoolProposal
from surveys.i18n import t
from surveys.rules import Grade


class DecisionError(Exception):
    """A decision step was refused; ``code`` is a catalog key under ``grading.error.``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Preview:
    """What locking one grade would do to its pool, before the tap (issue 14)."""

    branch: BranchTally
    grade: Grade
    pool: PoolProposal | None
    good: int  # 好 in the pool's intended grades (decisions where taken, proposals elsewhere)
    poor: int
    violations: list[Violation]  # every rule the intended grades break
    open: list[Violation]  # those no confirmed exception covers: they block the decision


def _locked(tally: RoundTally, pool: PoolProposal) -> dict[int, Grade]:
    """The pool's locked decisions (by branch)."""
    found: dict[int, Grade] = {}
    for branch in tally.branches:
        decision = branch.decision
        if branch.pool is not pool.pool or decision is None or not decision.locked:
            continue
        if decision.final_grade is not None:
            found[branch.org_id] = decision.final_grade
    return found


def exceptions(session: Session, *, round_id: int) -> list[DecisionException]:
    """The round's exceptions, requested and confirmed ones alike."""
    rows = session.exec(
        select(DecisionExceptionRow).where(DecisionExceptionRow.round_id == round_id)
    ).all()
    return [_exception(row) for row in rows]


def _exception(row: DecisionExceptionRow) -> DecisionException:
    return DecisionException(
        kind=ViolationKind(row.kind),
        org_ids=tuple(row.org_ids),
        reason=row.reason,
        requested_by=row.requested_by or 0,
        confirmed_by=row.confirmed_by,
    )


def preview(
    session: Session, *, round_id: int, org_id: int, grade: Grade, now: datetime
) -> Preview:
    """The effect of locking ``grade`` for a branch: counts against quotas, violations."""
    tally = round_tally(session, round_id=round_id, now=now, details=False)
    branch = tally.branch(org_id)
    if branch is None:
        raise DecisionError("not_in_round")
    pool = tally.pools.get(branch.pool) if branch.pool is not None else None
    if pool is None:
        raise DecisionError("not_graded")
    decisions = _locked(tally, pool) | {org_id: grade}
    vetoed = {b.org_id for b in tally.branches if b.vetoed}
    violations = check_decisions(pool, decisions, vetoed)
    intended = {b.org_id: b.grade for b in pool.branches if b.grade is not None} | decisions
    return Preview(
        branch=branch,
        grade=grade,
        pool=pool,
        good=sum(1 for g in intended.values() if g is Grade.GOOD),
        poor=sum(1 for g in intended.values() if g is Grade.POOR),
        violations=violations,
        open=unresolved(violations, exceptions(session, round_id=round_id)),
    )


def request_exception(
    session: Session,
    *,
    round_id: int,
    org_id: int,
    grade: Grade,
    reason: str,
    person_id: int,
    now: datetime,
) -> list[DecisionExceptionRow]:
    """Ask for an exception to every open violation of this decision, with a reason."""
    reason = (reason or "").strip()
    if not reason:
        raise DecisionError("reason_required")
    found = preview(session, round_id=round_id, org_id=org_id, grade=grade, now=now)
    if not found.open:
        raise DecisionError("no_violation")
    rows = []
    for violation in found.open:
        row = DecisionExceptionRow(
            round_id=round_id,
            kind=violation.kind.value,
            org_ids=list(violation.org_ids),
            grades={str(org_id): grade.value},
            reason=reason[:500],
            requested_by=person_id,
            requested_at=now,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    audit.record(
        session=session,
        action="grade.exception_request",
        at=now,
        actor_person_id=person_id,
        target=f"org:{org_id}",
        detail={
            "round_id": round_id,
            "grade": grade.value,
            "violations": [v.kind.value for v in found.open],
            "reason": reason[:500],
            "exception_ids": [row.id for row in rows],
        },
    )
    _tell_other_organizers(session, rows[0], org_id, grade, now)
    return rows


def _tell_other_organizers(
    session: Session, request: DecisionExceptionRow, org_id: int, grade: Grade, now: datetime
) -> None:
    """Queue to every other organizer of the branch that an exception waits for them: only a
    second organizer may confirm it (docs/rules.md §8), and nothing else would tell them."""
    org = session.get(Organization, org_id)
    asker = session.get(Person, request.requested_by)
    for recipient in holders_of(session, role=Role.ORGANIZER, org_ids=[org_id]):
        if recipient.person_id == request.requested_by:
            continue
        text = t(
            "grading.exception_notice",
            recipient.locale,
            asker=asker.name if asker is not None else "",
            name=org.name if org is not None else "",
            grade=t(f"grade.{grade.value}", recipient.locale),
            reason=request.reason,
        )
        message = NewMessage(
            round_id=request.round_id,
            person_id=recipient.person_id,
            chat_id=recipient.chat_id,
            kind="exception_waiting",
            slot=f"{org_id}:{request.id}",
            payload={"text": text},
            not_before=now,
        )
        enqueue(session, message=message, now=now)


def pending_exception(
    session: Session, *, round_id: int, org_id: int
) -> tuple[Grade, str, int | None] | None:
    """A branch's exception waiting for a second organizer: (grade, reason, requested_by)."""
    rows = session.exec(
        select(DecisionExceptionRow)
        .where(DecisionExceptionRow.round_id == round_id)
        .order_by(DecisionExceptionRow.id.desc())  # type: ignore[union-attr]
    ).all()
    for row in rows:
        if row.confirmed_by is None and str(org_id) in row.grades:
            return Grade(row.grades[str(org_id)]), row.reason, row.requested_by
    return None


def confirm_exception(
    session: Session, *, round_id: int, org_id: int, person_id: int, now: datetime
) -> tuple[Grade, str, int | None]:
    """A second organizer confirms the branch's waiting exception rows; audited.

    Returns (grade, reason, requested_by) so the caller locks the decision with them.
    """
    waiting = [
        row
        for row in session.exec(
            select(DecisionExceptionRow).where(DecisionExceptionRow.round_id == round_id)
        ).all()
        if row.confirmed_by is None and str(org_id) in row.grades
    ]
    if not waiting:
        raise DecisionError("no_exception")
    if any(row.requested_by == person_id for row in waiting):
        raise DecisionError("same_person")
    for row in waiting:
        row.confirmed_by, row.confirmed_at = person_id, now
        session.add(row)
    first = waiting[0]
    audit.record(
        session=session,
        action="grade.exception_confirm",
        at=now,
        actor_person_id=person_id,
        target=f"org:{org_id}",
        detail={"round_id": round_id, "exception_ids": [row.id for row in waiting]},
    )
    session.flush()
    return Grade(first.grades[str(org_id)]), first.reason, first.requested_by


def unlock_grade(
    session: Session, *, round_id: int, org_id: int, reason: str, person_id: int, now: datetime
) -> GradeDecision:
    """Unlock a decided grade with a reason (docs/rules.md §8.3); the grade is undecided again."""
    reason = (reason or "").strip()
    if not reason:
        raise DecisionError("reason_required")
    decision = session.get(GradeDecision, (round_id, org_id))
    if decision is None or not decision.locked:
        raise DecisionError("not_locked")
    previous = decision.final_grade
    decision.locked, decision.final_grade, decision.reason = False, None, None
    session.add(decision)
    audit.record(
        session=session,
        action="grade.unlock",
        at=now,
        actor_person_id=person_id,
        target=f"org:{org_id}",
        detail={"round_id": round_id, "previous": previous, "reason": reason[:500]},
    )
    session.flush()
    return decision
