"""Checking the committee's decisions against a pool: quotas, vetoes, status; exceptions.

Pure rules (docs/rules.md §8, §9): storage persists the exceptions and unlocks and audits
each step; the bot refuses a decision while ``unresolved`` returns anything.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from surveys.grading import PoolProposal, Status, require_reason
from surveys.rules import Grade

# ---------------------------------------------------------------------------
# Checking the committee's decisions (docs/rules.md §8)
# ---------------------------------------------------------------------------


class ViolationKind(StrEnum):
    """A way an intended set of grades breaks the rules."""

    TOO_MANY_GOOD = "too_many_good"  # seed 001 五: 好 不能超过20%
    TOO_FEW_POOR = "too_few_poor"  # seed 001 五: 较差 不低于10%
    GOOD_DESPITE_VETO = "good_despite_veto"  # seed 004 高压线
    PARTICIPATION_NOT_MET = "participation_not_met"  # seed 000 二.2: 参与面未达标
    INCOMPLETE = "incomplete"  # graded before its parts are in
    POOL_INCOMPLETE = "pool_incomplete"  # quotas cannot be checked on a partial pool


@dataclass(frozen=True)
class Violation:
    """One broken rule; ``org_ids`` are the branches whose grades make it up."""

    kind: ViolationKind
    org_ids: tuple[int, ...]
    limit: int | None = None
    actual: int | None = None


@dataclass(frozen=True)
class DecisionException:
    """A decision kept against a rule: a reason and a second organizer's confirmation.

    Storage persists it (and audits both steps); it covers exactly the violation it was
    asked for (same kind, same branches), so a changed distribution needs a new one.
    """

    kind: ViolationKind
    org_ids: tuple[int, ...]
    reason: str
    requested_by: int
    confirmed_by: int | None = None

    @property
    def confirmed(self) -> bool:
        """Confirmed by an organizer other than the one who asked."""
        return self.confirmed_by is not None and self.confirmed_by != self.requested_by

    def covers(self, violation: Violation) -> bool:
        """Whether this exception, once confirmed, lets that violation stand."""
        return (self.kind, self.org_ids) == (violation.kind, violation.org_ids)


def request_exception(violation: Violation, reason: str, requested_by: int) -> DecisionException:
    """Ask for an exception to one violation; the reason is required."""
    return DecisionException(
        violation.kind, violation.org_ids, require_reason(reason), requested_by
    )


def confirm_exception(exception: DecisionException, confirmed_by: int) -> DecisionException:
    """A second organizer confirms; the one who asked cannot confirm their own request."""
    if confirmed_by == exception.requested_by:
        raise ValueError("an exception needs a second organizer")
    return replace(exception, confirmed_by=confirmed_by)


def intended_grades(pool: PoolProposal, decisions: Mapping[int, Grade]) -> dict[int, Grade]:
    """Decisions where taken, the proposal elsewhere: the distribution the pool would end with."""
    intended: dict[int, Grade] = {}
    for branch in pool.branches:
        if branch.grade is not None:
            intended[branch.org_id] = branch.grade
    intended.update(decisions)
    return intended


def check_decisions(
    pool: PoolProposal, decisions: Mapping[int, Grade], vetoed: Collection[int] = ()
) -> list[Violation]:
    """Every rule the intended grades of a pool break (quotas, veto, status)."""
    violations: list[Violation] = []
    for branch in pool.branches:
        if branch.org_id not in decisions:
            continue
        if branch.status.status is Status.PARTICIPATION_NOT_MET:
            violations.append(Violation(ViolationKind.PARTICIPATION_NOT_MET, (branch.org_id,)))
        elif branch.status.status is Status.INCOMPLETE:
            violations.append(Violation(ViolationKind.INCOMPLETE, (branch.org_id,)))
    for org_id in sorted(decisions):
        if decisions[org_id] is Grade.GOOD and org_id in vetoed:
            violations.append(Violation(ViolationKind.GOOD_DESPITE_VETO, (org_id,)))
    if not pool.complete:
        if decisions:
            violations.append(Violation(ViolationKind.POOL_INCOMPLETE, tuple(sorted(decisions))))
        return violations
    violations.extend(_quota_violations(pool, intended_grades(pool, decisions)))
    return violations


def _quota_violations(pool: PoolProposal, intended: Mapping[int, Grade]) -> list[Violation]:
    graded = {b.org_id for b in pool.branches if b.status.status is Status.COMPLETE}
    good = tuple(sorted(o for o, g in intended.items() if g is Grade.GOOD and o in graded))
    poor = tuple(sorted(o for o, g in intended.items() if g is Grade.POOR and o in graded))
    found: list[Violation] = []
    if pool.max_good is not None and len(good) > pool.max_good:
        found.append(Violation(ViolationKind.TOO_MANY_GOOD, good, pool.max_good, len(good)))
    if pool.min_poor is not None and len(poor) < pool.min_poor:
        found.append(Violation(ViolationKind.TOO_FEW_POOR, poor, pool.min_poor, len(poor)))
    return found


def unresolved(
    violations: Sequence[Violation], exceptions: Sequence[DecisionException]
) -> list[Violation]:
    """The violations no confirmed exception covers: these block the decisions."""
    confirmed = [e for e in exceptions if e.confirmed]
    return [v for v in violations if not any(e.covers(v) for e in confirmed)]


def ready_to_report(
    pool: PoolProposal,
    decided: Collection[int],
    open_violations: Sequence[Violation],
) -> list[str]:
    """What still stops 上报 of a pool (docs/rules.md §9); an empty list means ready.

    The pool must be complete, every complete branch decided, and every violation covered
    by a confirmed exception (``unresolved`` gives ``open_violations``).
    """
    blockers: list[str] = []
    if not pool.complete:
        blockers.append("pool_incomplete")
    graded = {b.org_id for b in pool.branches if b.status.status is Status.COMPLETE}
    if graded - set(decided):
        blockers.append("undecided")
    if open_violations:
        blockers.append("violations")
    return blockers


@dataclass(frozen=True)
class Unlock:
    """Re-opening a locked decision: who and why (audited by storage)."""

    org_id: int
    reason: str
    person_id: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", require_reason(self.reason))
