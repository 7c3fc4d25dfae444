"""What the meeting screen shows about ONE branch, read with a handful of indexed queries.

The screen is polled by every phone and projector in the room, so nothing here touches the
rest of the round: participation is counted from the branch's own assignments, the
announcement from the branch's own satisfaction counters. (``round_tally`` would compute
the county's quotas for one branch; the screen shows no grade, so it needs none of that.)

Privacy is the same as /publish (docs/rules.md §7): below the round's small-group threshold the
announcement carries the ballot count only — no rates, no score, no per-option counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import case, func
from sqlmodel import Session, select

from storage.announcements import announced
from storage.grading import Signature, signatures
from storage.models import (
    Assignment,
    Organization,
    Round,
)
from storage.participation import target_overrides
from storage.registration import find_account
from storage.rounds import RoundError, branch_link_for, current_round
from storage.scope import Scope, scope_for
from storage.tallies import satisfaction_instrument
from surveys.categories import Audience, Category
from surveys.instruments import Instrument
from surveys.options import RoundOptions
from surveys.rules import Coverage, OrgProfile, coverage_for, targets_for

SCREEN_AUDIENCES = (Audience.MEMBERS, Audience.MASSES)
"""The two audiences of the 党员群众测评 the screen counts."""


@dataclass(frozen=True)
class Announcement:
    """The satisfaction tally as /publish announces it (privacy already applied)."""

    ballots: int
    threshold: int
    small_group: bool
    published: bool = True
    satisfaction_rate: Decimal | None = None
    awareness_rate: Decimal | None = None
    participation_rate: Decimal | None = None
    score: Decimal | None = None
    distribution: Mapping[str, Mapping[str, int]] | None = None  # item → option → count


@dataclass(frozen=True)
class BranchScreen:
    """Everything the screen shows about one branch in one round."""

    org_id: int
    name: str
    round_id: int
    round_name: str
    coverage: dict[Audience, Coverage]
    announcement: Announcement
    instrument: Instrument
    signed: dict[str, Signature]


def _profile(org: Organization) -> OrgProfile:
    return OrgProfile(
        category=Category(org.category),
        members=org.members,
        representatives=org.representatives,
        staff=org.staff,
        has_workers_congress=org.has_workers_congress,
        members_only=org.members_only,
    )


def branch_coverage(session: Session, round_: Round, org: Organization) -> dict[Audience, Coverage]:
    """Members and masses answered against target, from this branch's assignments alone."""
    submitted = func.sum(case((Assignment.status == "submitted", 1), else_=0))
    # Filtered on the branch alone, grouped by round: a planner without statistics (SQLite)
    # would otherwise walk the round's index, every assignment of the county.
    rows = session.exec(
        select(Assignment.round_id, Assignment.audience, func.count(), submitted)
        .where(Assignment.org_id == org.id)
        .group_by(Assignment.round_id, Assignment.audience)
    ).all()
    counts = {
        Audience(audience): (int(n), int(done or 0))
        for round_id, audience, n, done in rows
        if round_id == round_.id
    }

    def assigned(audience: Audience) -> int:
        return counts.get(audience, (0, 0))[0]

    targets = targets_for(
        _profile(org),
        committee_members=assigned(Audience.COMMITTEE),
        inspectors=assigned(Audience.INSPECTORS),
        organizers=assigned(Audience.ORGANIZERS),
        overrides=target_overrides(round_),
    )
    return {
        audience: coverage_for(target, counts.get(audience, (0, 0))[1])
        for audience, target in targets.items()
        if audience in SCREEN_AUDIENCES
    }


def announcement(
    session: Session, round_: Round, org_id: int, instrument: Instrument
) -> Announcement:
    """The branch's satisfaction tally as /publish stored it (当场统计并公布).

    Before the first /publish the page shows participation only; after it, the record as
    announced and signed: later ballots change the live tally, never this (docs/rules.md §10).
    """
    assert round_.id is not None
    threshold = RoundOptions.from_json(round_.options).small_group_threshold
    record = announced(session, round_id=round_.id, org_id=org_id)
    if record is None:
        return Announcement(ballots=0, threshold=threshold, small_group=True, published=False)
    rates = record.rates
    if rates is None:  # below the threshold when announced: the numbers stay hidden (§7)
        return Announcement(ballots=record.ballots, threshold=threshold, small_group=True)
    return Announcement(
        ballots=record.ballots,
        threshold=threshold,
        small_group=False,
        satisfaction_rate=rates.get("satisfaction"),
        awareness_rate=rates.get("awareness"),
        participation_rate=rates.get("participation"),
        score=record.satisfaction_score,
        distribution=record.distribution,
    )


def branch_screen(session: Session, *, round_id: int, org_id: int) -> BranchScreen | None:
    """The screen of one branch, or None when the round or the branch is unknown."""
    round_ = session.get(Round, round_id)
    org = session.get(Organization, org_id)
    if round_ is None or round_.id is None or org is None or org.id is None:
        return None
    instrument = satisfaction_instrument(session, round_.id)
    return BranchScreen(
        org_id=org.id,
        name=org.name,
        round_id=round_.id,
        round_name=round_.name,
        coverage=branch_coverage(session, round_, org),
        announcement=announcement(session, round_, org.id, instrument),
        instrument=instrument,
        signed=signatures(session, round_id=round_.id, org_ids=[org.id]).get(org.id, {}),
    )


@dataclass(frozen=True)
class ScreenViewer:
    """A Telegram user as the screen sees them: their person, the open round, their scope."""

    person_id: int | None
    language: str | None
    round_id: int | None
    scope: Scope | None

    def can_see(self, org_id: int) -> bool:
        """Whether /tally and /publish would show this person the branch."""
        return self.scope is not None and self.scope.can_see(org_id)


def screen_viewer(session: Session, *, telegram_user_id: int) -> ScreenViewer:
    """Who a Mini App user is and what they may see in the open round (as the commands do)."""
    account = find_account(session, telegram_user_id=telegram_user_id)
    round_ = current_round(session)
    person_id = account.person_id if account is not None else None
    language = account.language if account is not None else None
    if person_id is None or round_ is None or round_.id is None:
        return ScreenViewer(person_id, language, round_.id if round_ else None, None)
    return ScreenViewer(
        person_id, language, round_.id, scope_for(session, person_id=person_id, round_id=round_.id)
    )


def visible_branches(session: Session, scope: Scope) -> dict[int, str]:
    """Names of the branches a scope may see, by id."""
    if scope.empty:
        return {}
    rows = session.exec(
        select(Organization.id, Organization.name).where(
            Organization.id.in_(sorted(scope.visible_orgs))  # type: ignore[union-attr]
        )
    ).all()
    return {int(org_id): name for org_id, name in rows}


def branch_link_token(
    session: Session, *, org_id: int, round_id: int, now: datetime, days: int
) -> str | None:
    """The branch's link token for mass representatives (made when missing), or None when
    the branch has no seats for one (no representatives or staff on the roster)."""
    try:
        return branch_link_for(session, org_id=org_id, round_id=round_id, now=now, days=days).token
    except RoundError:
        return None
