"""Participation (参与面) of every branch of a round against its targets, in one SQL pass.

Denominators come from the roster counts (docs/rules.md §6): someone who never registered
with the bot has simply not responded. Respondents are the submitted assignments, counted
per branch and audience in ``assignment_count`` (kept by triggers on ``assignment``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, case, func
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from storage.models import (
    Assignment,
    AssignmentCount,
    Organization,
    Person,
    Round,
    RoundInstrument,
    TelegramAccount,
)
from surveys.categories import BRANCH_AUDIENCES, Audience, Category
from surveys.grading import participation_gap
from surveys.options import RoundOptions
from surveys.rules import Coverage, OrgProfile, Target, coverage_for, targets_for


@dataclass(frozen=True)
class BranchCoverage:
    """One branch's participation against target, per audience."""

    org_id: int
    name: str
    category: Category
    members_only: bool
    coverage: dict[Audience, Coverage]

    @property
    def behind(self) -> int:
        """How many more respondents the branch needs (the one gap formula, issue 14)."""
        return participation_gap(self.coverage)


@dataclass(frozen=True)
class PersonStatus:
    """Someone assigned to a branch who has not responded yet, and whether the bot reaches them."""

    person_id: int
    name: str
    phone: str | None
    audience: Audience
    instrument_id: str
    registered: bool
    blocked: bool

    @property
    def unreachable(self) -> bool:
        """The bot cannot nudge this person: never registered, or blocked the bot."""
        return not self.registered or self.blocked


def target_overrides(round_: Round) -> Mapping[str, Decimal]:
    """The round's target-rate overrides (``options["targets"]``), as Decimals."""
    return RoundOptions.from_json(round_.options).targets


_AUDIENCES = {audience.value: audience for audience in Audience}  # no enum call per row
_ORG_COLUMNS = (
    "id",
    "name",
    "category",
    "members",
    "representatives",
    "staff",
    "has_workers_congress",
    "members_only",
)


def _coverage_rows(
    session: Session,
    round_id: int,
    org_ids: Collection[int] | None,
    *,
    assigned_only: bool,
) -> list[Row[Any]]:
    """Each graded branch's roster columns and its counts per audience, one row per branch.

    The counts come from ``assignment_count`` (kept by triggers, migration 0008), pivoted
    to two columns per audience: a county is a thousand rows, not every assignment.
    ``assigned_only`` leaves out the branches with no assignment in the round.
    """
    counts = AssignmentCount.__table__  # type: ignore[attr-defined]
    pivot = [
        func.sum(case((counts.c.audience == audience.value, counts.c[column]), else_=0)).label(
            f"{audience.value}_{column}"
        )
        for audience in Audience
        for column in ("assigned", "submitted")
    ]
    only = [] if org_ids is None else [counts.c.org_id.in_(list(org_ids))]
    per_branch = (
        sa_select(counts.c.org_id, *pivot)
        .where(counts.c.round_id == round_id, *only)
        .group_by(counts.c.org_id)
        .subquery()
    )
    orgs = Organization.__table__  # type: ignore[attr-defined]
    join = orgs.join(per_branch, per_branch.c.org_id == orgs.c.id, isouter=not assigned_only)
    only = [] if org_ids is None else [orgs.c.id.in_(list(org_ids))]
    statement = (
        sa_select(*(orgs.c[name] for name in _ORG_COLUMNS), *list(per_branch.c)[1:])
        .select_from(join)
        .where(orgs.c.category != Category.COMMITTEE.value, *only)
        .order_by(orgs.c.id)
    )
    return list(session.connection().execute(statement).all())


def _counts_of(row: Row[Any]) -> dict[Audience, tuple[int, int]]:
    """(assigned, submitted) per audience of one branch's row (audiences it has)."""
    counts = {}
    for audience in Audience:
        assigned = row._mapping[f"{audience.value}_assigned"]
        if assigned:
            counts[audience] = (int(assigned), int(row._mapping[f"{audience.value}_submitted"]))
    return counts


def assigned_coverage(
    session: Session, *, round_: Round, org_ids: Collection[int] | None = None
) -> dict[int, BranchCoverage]:
    """Coverage of the branches with an assignment in the round (of the given ones only).

    Plain rows, no ORM objects: a tally calls this for a whole county.
    """
    overrides = target_overrides(round_)
    rows = _coverage_rows(session, round_.id, org_ids, assigned_only=True)  # type: ignore[arg-type]
    return {row.id: _branch_coverage(row, _counts_of(row), overrides) for row in rows}


def _profile(org: Organization | Row[Any]) -> OrgProfile:
    return OrgProfile(
        category=Category(org.category),
        members=org.members,
        representatives=org.representatives,
        staff=org.staff,
        has_workers_congress=org.has_workers_congress,
        members_only=org.members_only,
    )


def round_coverage(
    session: Session, *, round_id: int, org_ids: Collection[int] | None = None
) -> dict[int, BranchCoverage]:
    """Coverage of every graded branch of the round (or of the given branches), by org id."""
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise LookupError(f"round {round_id}")
    overrides = target_overrides(round_)
    rows = _coverage_rows(session, round_id, org_ids, assigned_only=False)
    return {row.id: _branch_coverage(row, _counts_of(row), overrides) for row in rows}


def _branch_coverage(
    org: Organization | Row[Any],
    counts: Mapping[Audience, tuple[int, int]],
    overrides: Mapping[str, Decimal],
) -> BranchCoverage:
    def assigned(audience: Audience) -> int:
        return counts.get(audience, (0, 0))[0]

    targets = _targets(
        (
            org.category,
            org.members,
            org.representatives,
            org.staff,
            org.has_workers_congress,
            org.members_only,
        ),
        tuple(assigned(a) for a in _PANELS),
        tuple(overrides.items()),
    )
    coverage = {
        audience: coverage_for(target, counts.get(audience, (0, 0))[1])
        for audience, target in targets.items()
    }
    return BranchCoverage(
        org_id=org.id,  # type: ignore[arg-type]
        name=org.name,
        category=_CATEGORIES[org.category],
        members_only=org.members_only,
        coverage=coverage,
    )


_PANELS = (Audience.COMMITTEE, Audience.INSPECTORS, Audience.ORGANIZERS)  # targets by panel size
_CATEGORIES = {category.value: category for category in Category}  # no enum call per branch


@lru_cache(maxsize=4096)  # pure: a county repeats the same rosters and panels many times
def _targets(
    profile: tuple[str, int, int, int, bool, bool],
    assigned: tuple[int, int, int],
    overrides: tuple[tuple[str, Decimal], ...],
) -> Mapping[Audience, Target]:
    """The targets of one roster (category and counts) and its assigned panels (shared)."""
    category, members, representatives, staff, workers_congress, members_only = profile
    committee_members, inspectors, organizers = assigned
    return targets_for(
        OrgProfile(
            Category(category), members, representatives, staff, workers_congress, members_only
        ),
        committee_members=committee_members,
        inspectors=inspectors,
        organizers=organizers,
        overrides=dict(overrides),
    )


def non_respondents(
    session: Session,
    *,
    round_id: int,
    org_id: int,
    audiences: Collection[Audience] | None = None,
) -> list[PersonStatus]:
    """People on the roster who owe a response about the branch (who answered is not secret)."""
    statement = (
        select(Assignment, Person, TelegramAccount)
        .join(Person, Person.id == Assignment.person_id)  # type: ignore[arg-type]
        .outerjoin(TelegramAccount, TelegramAccount.person_id == Person.id)  # type: ignore[arg-type]
        .where(
            Assignment.round_id == round_id,
            Assignment.org_id == org_id,
            Assignment.status != "submitted",
            Person.anonymous == False,  # noqa: E712  (SQL comparison)
        )
        .order_by(Assignment.audience, Person.name, Person.id)
    )
    if audiences is not None:
        statement = statement.where(Assignment.audience.in_([a.value for a in audiences]))  # type: ignore[attr-defined]
    return [
        PersonStatus(
            person_id=person.id,  # type: ignore[arg-type]
            name=person.name,
            phone=person.phone,
            audience=Audience(assignment.audience),
            instrument_id=assignment.instrument_id,
            registered=account is not None,
            blocked=account is not None and account.blocked_at is not None,
        )
        for assignment, person, account in session.exec(statement).all()
    ]


@dataclass(frozen=True)
class PersonOwing:
    """One person of a branch who still owes something about it: every survey on one line."""

    person_id: int
    name: str
    phases: tuple[str, ...]  # the phases of the surveys still owed, in a fixed order
    audiences: tuple[Audience, ...]
    registered: bool
    blocked: bool

    @property
    def unreachable(self) -> bool:
        """The bot cannot nudge this person: never registered, or blocked the bot."""
        return not self.registered or self.blocked


_PHASE_ORDER = ("satisfaction", "self_evaluation", "inspection", "superior_scoring")


def owing_people(
    session: Session,
    *,
    round_id: int,
    org_id: int,
    audiences: Collection[Audience] = BRANCH_AUDIENCES,
) -> list[PersonOwing]:
    """The branch's own people who owe a response about it, one entry per person (issue 14).

    A secretary who is also a member and a committee member has two assignments; they are
    merged here, with what each still owes. The default audiences leave the township's
    inspectors and organizers out of a branch's list. Names only: never any answer.
    """
    statement = (
        select(Assignment, Person, TelegramAccount, RoundInstrument.phase)
        .join(Person, Person.id == Assignment.person_id)  # type: ignore[arg-type]
        .outerjoin(TelegramAccount, TelegramAccount.person_id == Person.id)  # type: ignore[arg-type]
        .outerjoin(
            RoundInstrument,
            (RoundInstrument.round_id == Assignment.round_id)  # type: ignore[arg-type]
            & (RoundInstrument.instrument_id == Assignment.instrument_id),
        )
        .where(
            Assignment.round_id == round_id,
            Assignment.org_id == org_id,
            Assignment.status != "submitted",
            Person.anonymous == False,  # noqa: E712  (SQL comparison)
            Assignment.audience.in_([a.value for a in audiences]),  # type: ignore[attr-defined]
        )
        .order_by(Person.name, Person.id)
    )
    found: dict[int, PersonOwing] = {}
    for assignment, person, account, phase in session.exec(statement).all():
        assert person.id is not None
        earlier = found.get(person.id)
        phases = set(earlier.phases if earlier else ()) | {phase or assignment.instrument_id}
        kinds = set(earlier.audiences if earlier else ()) | {Audience(assignment.audience)}
        found[person.id] = PersonOwing(
            person_id=person.id,
            name=person.name,
            phases=tuple(sorted(phases, key=_phase_rank)),
            audiences=tuple(a for a in Audience if a in kinds),
            registered=account is not None,
            blocked=account is not None and account.blocked_at is not None,
        )
    # Sorted here, not by the database's collation, so both backends list the same order.
    return sorted(found.values(), key=lambda p: (p.name, p.person_id))


def _phase_rank(phase: str) -> tuple[int, str]:
    return (_PHASE_ORDER.index(phase) if phase in _PHASE_ORDER else len(_PHASE_ORDER), phase)
