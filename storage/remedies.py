"""补测 re-runs and participation waivers: the two ways forward from 参与面未达标 (rules §6.4).

A re-run reopens the satisfaction phase for one branch, with its own deadline; the branch
is incomplete again until then, its members and masses can answer (``rerun_window``), and
its reminders are planned against that deadline. A waiver is an organizer's decision, with
a reason, to grade the branch on the ballots it has. Both are audited in the same
transaction as the row they write.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlmodel import Session, col, select

from storage import audit
from storage.models import BranchRerun, ParticipationWaiverRow, Round, RoundPhase
from surveys.grading import ParticipationWaiver, Rerun

SATISFACTION_PHASE = "satisfaction"


class RemedyError(Exception):
    """A re-run or waiver was refused; ``code`` names a catalog key under ``grading.error.``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _reason(text: str | None) -> str:
    reason = (text or "").strip()
    if not reason:
        raise RemedyError("reason_required")
    return reason[:500]


def order_rerun(
    session: Session,
    *,
    round_id: int,
    org_id: int,
    deadline: datetime,
    reason: str,
    person_id: int | None,
    now: datetime,
) -> BranchRerun:
    """Reopen the satisfaction phase for one branch until ``deadline`` (UTC); audited."""
    reason = _reason(reason)
    round_ = session.get(Round, round_id)
    if round_ is None or round_.status == "closed":
        raise RemedyError("round_closed")
    if deadline <= now:
        raise RemedyError("deadline_past")
    row = session.get(BranchRerun, (round_id, org_id)) or BranchRerun(
        round_id=round_id, org_id=org_id, opens_at=now, deadline=deadline, reason=reason
    )
    row.opens_at, row.deadline, row.reason, row.ordered_by = now, deadline, reason, person_id
    session.add(row)
    audit.record(
        session=session,
        action="grade.rerun",
        at=now,
        actor_person_id=person_id,
        target=f"org:{org_id}",
        detail={"round_id": round_id, "deadline": deadline.isoformat(), "reason": reason},
    )
    session.flush()
    return row


def waive_participation(
    session: Session,
    *,
    round_id: int,
    org_id: int,
    reason: str,
    person_id: int | None,
    now: datetime,
) -> ParticipationWaiverRow:
    """Grade a branch although its participation fell short, with a reason; audited."""
    reason = _reason(reason)
    row = session.get(ParticipationWaiverRow, (round_id, org_id)) or ParticipationWaiverRow(
        round_id=round_id, org_id=org_id, reason=reason
    )
    row.reason, row.decided_by, row.decided_at = reason, person_id, now
    session.add(row)
    audit.record(
        session=session,
        action="grade.waive_participation",
        at=now,
        actor_person_id=person_id,
        target=f"org:{org_id}",
        detail={"round_id": round_id, "reason": reason},
    )
    session.flush()
    return row


def reruns(
    session: Session, *, round_id: int, org_ids: Collection[int] | None = None
) -> dict[int, Rerun]:
    """The round's re-runs by branch."""
    statement = select(BranchRerun).where(BranchRerun.round_id == round_id)
    if org_ids is not None:
        statement = statement.where(col(BranchRerun.org_id).in_(list(org_ids)))
    return {
        row.org_id: Rerun(row.deadline, row.reason, row.ordered_by or 0)
        for row in session.exec(statement).all()
    }


def waivers(session: Session, *, round_id: int) -> dict[int, ParticipationWaiver]:
    """The round's participation waivers by branch."""
    rows = session.exec(
        select(ParticipationWaiverRow).where(ParticipationWaiverRow.round_id == round_id)
    ).all()
    return {row.org_id: ParticipationWaiver(row.reason, row.decided_by or 0) for row in rows}


def satisfaction_deadline(session: Session, *, round_id: int) -> datetime | None:
    """The round's satisfaction deadline (before any 补测)."""
    phase = session.get(RoundPhase, (round_id, SATISFACTION_PHASE))
    return phase.deadline if phase is not None else None


def rerun_window(
    session: Session, *, round_id: int, org_id: int, phase: RoundPhase | None
) -> RoundPhase | None:
    """The satisfaction window a branch answers in: its re-run's, while that lasts longer.

    A transient RoundPhase (never added to the session) so the answering code's
    ``window_state`` judges the branch's own deadline.
    """
    if phase is None or phase.phase != SATISFACTION_PHASE:
        return phase
    row = session.get(BranchRerun, (round_id, org_id))
    return with_rerun(phase, row.deadline if row is not None else None)


def with_rerun(phase: RoundPhase | None, rerun_deadline: datetime | None) -> RoundPhase | None:
    """:func:`rerun_window` when the branch's re-run deadline (None: no re-run) was read
    already, e.g. joined into the query that loaded the phase."""
    if phase is None or phase.phase != SATISFACTION_PHASE:
        return phase
    if rerun_deadline is None or rerun_deadline <= phase.deadline:
        return phase
    return RoundPhase(
        round_id=phase.round_id, phase=phase.phase, opens_at=None, deadline=rerun_deadline
    )
