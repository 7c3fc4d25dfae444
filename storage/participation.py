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

from sqlalchemy import Row, Select, bindparam, func, literal_column
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


_ORG_COLUMNS = (  # in this order: _branch_coverage reads the profile as row[2:8]
    "id",
    "name",
    "category",
    "members",
    "representatives",
    "staff",
    "has_workers_congress",
    "members_only",
)


@lru_cache(maxsize=4)
def _coverage_statement(*, assigned_only: bool, some: bool) -> Select[Any]:
    """The statement of ``_coverage_rows``, built once (a county tally runs it often).

    Parameters: ``round_id``, and ``org_ids`` (expanding) when ``some``.
    """
    counts = AssignmentCount.__table__  # type: ignore[attr-defined]
    pivot = [
        func.sum(counts.c[column]).filter(counts.c.audience == literal_column(f"'{audience}'"))
        for audience in Audience
        for column in ("assigned", "submitted")
    ]
    per_branch = sa_select(counts.c.org_id, *pivot).where(
        counts.c.round_id == bindparam("round_id")
    )
    orgs = Organization.__table__  # type: ignore[attr-defined]
    graded = [orgs.c.category != Category.COMMITTEE.value]
    if some:
        per_branch = per_branch.where(counts.c.org_id.in_(bindparam("org_ids", expanding=True)))
        graded.append(orgs.c.id.in_(bindparam("org_ids", expanding=True)))
    branches = per_branch.group_by(counts.c.org_id).subquery()
    join = orgs.join(branches, branches.c.org_id == orgs.c.id, isouter=not assigned_only)
    return (
        sa_select(*(orgs.c[name] for name in _ORG_COLUMNS), *list(branches.c)[1:])
        .select_from(join)
        .where(*graded)
        .order_by(orgs.c.id)
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
    statement = _coverage_statement(assigned_only=assigned_only, some=org_ids is not None)
    parameters: dict[str, Any] = {"round_id": round_id}
    if org_ids is not None:
        parameters["org_ids"] = list(org_ids)
    return list(session.connection().execute(statement, parameters).all())


_PIVOT = tuple(
    (audience, len(_ORG_COLUMNS) + 2 * n) for n, audience in enumerate(Audience)
)  # each audience's (assigned, submitted) columns in a row of _coverage_rows


def _counts_of(row: Row[Any]) -> dict[Audience, tuple[int, int]]:
    """(assigned, submitted) per audience of one branch's row (the audiences it has)."""
    return {audience: (row[at], row[at + 1]) for audience, at in _PIVOT if row[at]}


def assigned_coverage(
    session: Session, *, round_: Round, org_ids: Collection[int] | None = None
) -> dict[int, BranchCoverage]:
    """Coverage of the branches with an assignment in the round (of the given ones only).

    Plain rows, no ORM objects: a tally calls this for a whole county.
    """
    overrides = tuple(target_overrides(round_).items())
    rows = _coverage_rows(session, round_.id, org_ids, assigned_only=True)  # type: ignore[arg-type]
    return {row.id: _coverage_of(row, overrides) for row in rows}


def round_coverage(
    session: Session, *, round_id: int, org_ids: Collection[int] | None = None
) -> dict[int, BranchCoverage]:
    """Coverage of every graded branch of the round (or of the given branches), by org id."""
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise LookupError(f"round {round_id}")
    overrides = tuple(target_overrides(round_).items())
    rows = _coverage_rows(session, round_id, org_ids, assigned_only=False)
    return {row.id: _coverage_of(row, overrides) for row in rows}


@lru_cache(maxsize=8192)  # pure: between two tallies most branches' rows are unchanged
def _coverage_of(row: Row[Any], overrides: tuple[tuple[str, Decimal], ...]) -> BranchCoverage:
    """One branch's coverage from its row: the same object again for an equal row (and the
    tally's memo, storage.tally_memo, then finds the branch unchanged at a glance)."""
    return _branch_coverage(row, _counts_of(row), overrides)


def forget_coverage() -> None:
    """Drop the coverage kept per row: the first tally after a start (bench.tally's cold)."""
    _coverage_of.cache_clear()


_NONE = (0, 0)


def _branch_coverage(
    row: Row[Any],
    counts: Mapping[Audience, tuple[int, int]],
    overrides: tuple[tuple[str, Decimal], ...],
) -> BranchCoverage:
    """One branch's coverage from its row of ``_coverage_rows`` (a county makes a thousand)."""
    get = counts.get
    targets = _targets(
        tuple(row[2:8]),  # category, members, representatives, staff, congress, members only
        (get(_PANELS[0], _NONE)[0], get(_PANELS[1], _NONE)[0], get(_PANELS[2], _NONE)[0]),
        overrides,
    )
    coverage = {
        audience: coverage_for(target, get(audience, _NONE)[1])
        for audience, target in targets.items()
    }
    return BranchCoverage(
        org_id=row.id,
        name=row.name,
        category=_CATEGORIES[row.category],
        members_only=row.members_only,
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
