"""Rounds (测评轮次): creation with pinned instruments and deadlines, assignments, invitations.

Assignments follow the roster (docs/rules.md §1, §3): members and mass representatives answer the
satisfaction survey about their branch, committee members the self-evaluation, inspectors
the inspection sheet of each branch they cover, organizers the superior scoring of each
branch in scope. Someone listed under the township committee (党委) covers every graded
branch under it.

Round options are validated and documented in ``surveys.options`` (``RoundOptions``). A round
scoped to some categories, or a quarterly re-grading by sample, assigns only the branches it
grades (``RoundOptions.grades``, docs/rules.md §2 and §11).
"""

from __future__ import annotations

import random
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import and_, func, update
from sqlmodel import Session, col, select

from storage.ballots import fold_after_commit
from storage.links import IssuedLink, token_digest
from storage.models import (
    Assignment,
    Invitation,
    Organization,
    PersonRole,
    Round,
    RoundInstrument,
    RoundPhase,
)
from surveys.audiences import masses_count, satisfaction_audience
from surveys.categories import Audience, Category, Phase, Role, graded
from surveys.deadlines import parse_phase_time as phase_time
from surveys.errors import RuleError
from surveys.grading import inspection_sheet
from surveys.instruments import bundled_instruments
from surveys.options import RoundOptions, check_options, parse_option_pairs

# --- Errors --------------------------------------------------------------------------------


class RoundError(Exception):
    """A round operation refused; ``code`` is a catalog key under ``round.error.``."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


class InvitationError(Exception):
    """A deep-link token that cannot be redeemed."""

    code = "invitation.error"


class InvitationUnknown(InvitationError):
    """No such token."""

    code = "unknown"


class InvitationExpired(InvitationError):
    """The token's expiry has passed."""

    code = "expired"


class InvitationUsed(InvitationError):
    """A personal token already redeemed."""

    code = "used"


class BranchLinkFull(InvitationError):
    """A branch link redeemed as many times as the branch has representatives."""

    code = "full"


# --- Options and deadlines typed on the command line --------------------------------------


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """Round options from KEY=VALUE strings; unknown keys and bad values raise RoundError."""
    try:
        return parse_option_pairs(pairs)
    except RuleError as error:
        raise RoundError(error.code, **error.params) from None


def parse_phase_time(text: str, zone: tzinfo) -> tuple[Phase, datetime]:
    """PHASE=YYYY-MM-DDTHH:MM (local time) as the phase and an aware UTC datetime."""
    try:
        return phase_time(text, zone)
    except RuleError as error:
        raise RoundError(error.code, **error.params) from None


# --- Rounds --------------------------------------------------------------------------------


def get_round(session: Session, round_id: int) -> Round:
    """The round, or RoundError("not_found")."""
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise RoundError("not_found", id=round_id)
    return round_


def list_rounds(session: Session) -> list[Round]:
    """Every round, newest first."""
    return list(session.exec(select(Round).order_by(col(Round.id).desc())).all())


def current_round(session: Session) -> Round | None:
    """The open round, if any (at most one is open at a time)."""
    return session.exec(select(Round).where(Round.status == "open")).first()


def round_phases(session: Session, round_id: int) -> list[RoundPhase]:
    """The phase windows of a round, in the order of the phases."""
    order = {phase.value: index for index, phase in enumerate(Phase)}
    rows = session.exec(select(RoundPhase).where(RoundPhase.round_id == round_id)).all()
    return sorted(rows, key=lambda row: order[row.phase])


def _latest_instruments() -> dict[str, tuple[int, str]]:
    """Instrument id → (highest bundled version, phase)."""
    latest: dict[str, tuple[int, str]] = {}
    for instrument in bundled_instruments():
        if instrument.id not in latest or instrument.version > latest[instrument.id][0]:
            latest[instrument.id] = (instrument.version, str(instrument.phase))
    return latest


def _check_windows(
    deadlines: Mapping[Phase, datetime], opens_at: Mapping[Phase, datetime], now: datetime
) -> None:
    """Deadlines aware and in the future; an opening time before its deadline."""
    if not deadlines:
        raise RoundError("no_deadline")
    for phase, deadline in deadlines.items():
        if deadline.tzinfo is None:
            raise ValueError("deadlines must be timezone-aware")
        if deadline <= now:
            raise RoundError("deadline_past", phase=phase.value)
    for phase, opening in opens_at.items():
        if phase not in deadlines:
            raise RoundError("opens_without_deadline", phase=phase.value)
        if opening >= deadlines[phase]:
            raise RoundError("opens_after_deadline", phase=phase.value)


def create_round(
    session: Session,
    *,
    name: str,
    deadlines: Mapping[Phase, datetime],
    options: Mapping[str, Any] | None = None,
    opens_at: Mapping[Phase, datetime] | None = None,
    now: datetime,
) -> Round:
    """A draft round: pins each phase's current instruments, stores windows, makes assignments.

    Only the phases given a deadline take part in the round.
    """
    name = name.strip()
    if not name or len(name) > 120:
        raise RoundError("bad_name", name=name)
    if session.exec(select(Round).where(Round.name == name)).first() is not None:
        raise RoundError("duplicate_name", name=name)
    _check_windows(deadlines, opens_at or {}, now)
    try:
        check_options(options)
    except RuleError as error:
        raise RoundError(error.code, **error.params) from None
    round_ = Round(name=name, options=dict(options or {}), created_at=now)
    session.add(round_)
    session.flush()
    assert round_.id is not None
    for phase, deadline in deadlines.items():
        opening = (opens_at or {}).get(phase)
        session.add(
            RoundPhase(round_id=round_.id, phase=phase.value, deadline=deadline, opens_at=opening)
        )
    phases = {phase.value for phase in deadlines}
    for instrument_id, (version, phase) in _latest_instruments().items():
        if phase in phases:
            session.add(
                RoundInstrument(
                    round_id=round_.id, instrument_id=instrument_id, version=version, phase=phase
                )
            )
    session.flush()
    sync_assignments(session, round_.id)
    return round_


def resolve_sample(
    session: Session,
    options: Mapping[str, Any],
    *,
    size: int | None,
    names: Sequence[str],
    seed: str,
) -> list[int]:
    """Branch ids a round samples: those named, else ``size`` drawn from its scope (抽检).

    The draw is seeded with the round's name, so the same command gives the same sample.
    """
    try:
        scoped = check_options({k: v for k, v in options.items() if k != "sample"})
    except RuleError as error:
        raise RoundError(error.code, **error.params) from None
    rows = session.exec(select(Organization.id, Organization.name, Organization.category)).all()
    pool = {
        name: org_id for org_id, name, category in rows if scoped.grades(Category(category), org_id)
    }
    if names:
        unknown = [name.strip() for name in names if name.strip() not in pool]
        if unknown:
            raise RoundError("sample_unknown", names="、".join(unknown))
        return sorted({pool[name.strip()] for name in names})
    if size is None or size < 1 or size > len(pool):
        raise RoundError("sample_size", size=size, available=len(pool))
    return sorted(random.Random(seed).sample(sorted(pool.values()), size))


def open_round(session: Session, *, round_id: int, now: datetime) -> Round:
    """Open a draft round; refused while another round is open or once it is closed."""
    # PostgreSQL: lock every round so two organizers opening rounds at once take turns and
    # the second sees the first's commit. (SQLite has no FOR UPDATE; its writers take turns.)
    session.exec(select(Round.id).with_for_update()).all()
    round_ = get_round(session, round_id)
    if round_.status == "open":
        raise RoundError("already_open", id=round_id)
    if round_.status == "closed":
        raise RoundError("already_closed", id=round_id)
    other = current_round(session)
    if other is not None:
        raise RoundError("another_open", id=other.id, name=other.name)
    round_.status, round_.opened_at = "open", now
    session.add(round_)
    session.flush()
    return round_


def close_round(session: Session, *, round_id: int, now: datetime) -> Round:
    """Close an open round: no more answers are accepted."""
    round_ = get_round(session, round_id)
    if round_.status != "open":
        raise RoundError("not_open", id=round_id)
    round_.status, round_.closed_at = "closed", now
    session.add(round_)
    session.flush()
    fold_after_commit(session, now=now, round_id=round_id)  # count the rest, purge (issue 8)
    return round_


# --- Assignments ---------------------------------------------------------------------------

AssignmentKey = tuple[int, str, int]  # (person id, instrument id, org id)


@dataclass(frozen=True)
class _Org:
    id: int
    category: Category
    parent_id: int | None


def _organizations(session: Session) -> dict[int, _Org]:
    """Every organization's id, category and parent."""
    rows = session.exec(
        select(Organization.id, Organization.category, Organization.parent_id)
    ).all()
    return {org_id: _Org(org_id, Category(category), parent) for org_id, category, parent in rows}


def _graded_under(orgs: Mapping[int, _Org], org_id: int) -> list[int]:
    """The graded branches in scope of an organization: itself if graded, else its descendants."""
    if org_id not in orgs:
        return []
    if graded(orgs[org_id].category):
        return [org_id]
    children: dict[int, list[int]] = defaultdict(list)
    for org in orgs.values():
        if org.parent_id is not None:
            children[org.parent_id].append(org.id)
    found: list[int] = []
    stack, seen = [org_id], {org_id}
    while stack:
        for child in children[stack.pop()]:
            if child in seen:
                continue
            seen.add(child)
            stack.append(child)
            if graded(orgs[child].category):
                found.append(child)
    return sorted(found)


def _wanted_assignments(
    session: Session, phases: set[str], options: RoundOptions
) -> dict[AssignmentKey, Audience]:
    """Every assignment the roster asks for in the given phases, with its audience.

    Only the branches the round grades (its scope and sample) get assignments.
    """
    every = _organizations(session)
    orgs = {
        org_id: org
        for org_id, org in every.items()
        if not graded(org.category) or options.grades(org.category, org_id)
    }
    wanted: dict[AssignmentKey, Audience] = {}
    roles = session.exec(select(PersonRole.person_id, PersonRole.org_id, PersonRole.role)).all()
    by_person: dict[tuple[int, int], set[str]] = defaultdict(set)
    for person_id, org_id, role in roles:
        by_person[(person_id, org_id)].add(role)
    for (person_id, org_id), held in by_person.items():
        org = orgs.get(org_id)
        if org is None:  # a branch out of the round's scope
            continue
        if graded(org.category) and Phase.SATISFACTION in phases:
            audience = satisfaction_audience({Role(role) for role in held})
            if audience is not None:
                wanted[(person_id, "satisfaction", org_id)] = audience
        if graded(org.category) and Role.COMMITTEE in held and Phase.SELF_EVALUATION in phases:
            wanted[(person_id, "self_evaluation", org_id)] = Audience.COMMITTEE
        if Role.INSPECTOR in held and Phase.INSPECTION in phases:
            for branch in _graded_under(orgs, org_id):
                sheet = inspection_sheet(orgs[branch].category, options.institution_sheet)
                if sheet is not None:  # 机关事业单位: per the round's option (§3.5)
                    wanted[(person_id, sheet, branch)] = Audience.INSPECTORS
        if Role.ORGANIZER in held and Phase.SUPERIOR_SCORING in phases:
            for branch in _graded_under(orgs, org_id):
                wanted[(person_id, "superior_scoring", branch)] = Audience.ORGANIZERS
    return wanted


def sync_assignments(session: Session, round_id: int) -> int:
    """Add the assignments the roster asks for and the round lacks; returns how many were added.

    Never removes one (it may hold answers) and never duplicates (unique in the database).
    """
    round_ = get_round(session, round_id)
    if round_.status == "closed":
        raise RoundError("already_closed", id=round_id)
    pinned = session.exec(
        select(RoundInstrument.instrument_id, RoundInstrument.phase).where(
            RoundInstrument.round_id == round_id
        )
    ).all()
    instruments = {instrument_id for instrument_id, _ in pinned}
    options = RoundOptions.from_json(round_.options)
    wanted = _wanted_assignments(session, {phase for _, phase in pinned}, options)
    have = set(
        session.exec(
            select(Assignment.person_id, Assignment.instrument_id, Assignment.org_id).where(
                Assignment.round_id == round_id
            )
        ).all()
    )
    missing = [
        Assignment(
            round_id=round_id,
            person_id=person_id,
            instrument_id=instrument_id,
            org_id=org_id,
            audience=audience.value,
        )
        for (person_id, instrument_id, org_id), audience in sorted(wanted.items())
        if (person_id, instrument_id, org_id) not in have and instrument_id in instruments
    ]
    session.add_all(missing)
    session.flush()
    return len(missing)


# --- Scope ---------------------------------------------------------------------------------


def roles_of(session: Session, person_id: int) -> list[tuple[Role, int]]:
    """Every (role, organization id) a person holds."""
    rows = session.exec(
        select(PersonRole.role, PersonRole.org_id)
        .where(PersonRole.person_id == person_id)
        .order_by(PersonRole.org_id, PersonRole.role)
    ).all()
    return [(Role(role), org_id) for role, org_id in rows]


def branches_in_scope(session: Session, *, person_id: int, role: Role) -> list[int]:
    """Graded branches this person sees in this role (under the 党委: every branch under it)."""
    orgs = _organizations(session)
    found: set[int] = set()
    for held, org_id in roles_of(session, person_id):
        if held is role:
            found.update(_graded_under(orgs, org_id))
    return sorted(found)


def graded_branches(session: Session, *, under: int | None = None) -> list[int]:
    """Ids of graded branches: all of them, or those under one organization."""
    orgs = _organizations(session)
    if under is not None:
        return _graded_under(orgs, under)
    return sorted(org.id for org in orgs.values() if graded(org.category))


# --- Invitations ---------------------------------------------------------------------------


def _new_token() -> str:
    """A URL-safe token ([A-Za-z0-9_-], 22 characters) fit for a Telegram deep link."""
    return secrets.token_urlsafe(16)


def create_invitation(
    session: Session, *, person_id: int, round_id: int | None, now: datetime, days: int
) -> IssuedLink:
    """A personal, single-use deep-link token valid for ``days`` (stored as its hash)."""
    token = _new_token()
    invitation = Invitation(
        token=token_digest(token),
        kind="personal",
        person_id=person_id,
        round_id=round_id,
        max_uses=1,
        expires_at=now + timedelta(days=days),
        created_at=now,
    )
    session.add(invitation)
    session.flush()
    return IssuedLink(token, invitation)


def invitation_for(
    session: Session, *, person_id: int, round_id: int | None, now: datetime, days: int
) -> IssuedLink:
    """A fresh invitation for the person and round; their earlier unused ones expire now.

    Only a hash of each token is stored, so an earlier link cannot be printed again:
    printing invitations twice hands out new QR codes and the older sheet stops working,
    which leaves one valid personal link per person at a time.
    """
    session.exec(
        update(Invitation)
        .where(
            and_(
                col(Invitation.kind) == "personal",
                col(Invitation.person_id) == person_id,
                col(Invitation.round_id) == round_id
                if round_id is not None
                else col(Invitation.round_id).is_(None),
                col(Invitation.uses) < col(Invitation.max_uses),
                col(Invitation.expires_at) > now,
            )
        )
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    return create_invitation(session, person_id=person_id, round_id=round_id, now=now, days=days)


def branch_link_capacity(org: Organization) -> int:
    """Seats of a branch link: the masses its target counts (representatives, or all staff)."""
    return masses_count(
        Category(org.category),
        representatives=org.representatives,
        staff=org.staff,
        has_workers_congress=org.has_workers_congress,
    )


def create_branch_link(
    session: Session, *, org_id: int, round_id: int | None, now: datetime, days: int
) -> IssuedLink:
    """A branch token for mass representatives (stored as its hash).

    The seats belong to the branch and round, not to the link: every link of the branch for
    the round draws on the same ``branch_link_capacity`` (see :func:`branch_seats_taken`).
    """
    org = session.get(Organization, org_id)
    if org is None:
        raise RoundError("unknown_branch", id=org_id)
    capacity = branch_link_capacity(org)
    if not graded(Category(org.category)) or capacity < 1:
        raise RoundError("no_branch_link", name=org.name)
    token = _new_token()
    invitation = Invitation(
        token=token_digest(token),
        kind="branch",
        org_id=org_id,
        round_id=round_id,
        max_uses=capacity,
        expires_at=now + timedelta(days=days),
        created_at=now,
    )
    session.add(invitation)
    session.flush()
    return IssuedLink(token, invitation)


def branch_link_for(
    session: Session, *, org_id: int, round_id: int | None, now: datetime, days: int
) -> IssuedLink:
    """A new branch link for the round (an earlier one cannot be shown again: only its hash
    is stored); earlier links keep working, and all of them share the branch's seats."""
    return create_branch_link(session, org_id=org_id, round_id=round_id, now=now, days=days)


def branch_seats_taken(session: Session, *, org_id: int, round_id: int | None) -> int:
    """Mass representatives a branch admitted for a round, across every link it was given."""
    round_match = (
        col(Invitation.round_id) == round_id
        if round_id is not None
        else col(Invitation.round_id).is_(None)
    )
    total = session.exec(
        select(func.coalesce(func.sum(Invitation.uses), 0)).where(
            Invitation.kind == "branch", Invitation.org_id == org_id, round_match
        )
    ).one()
    return int(total)


def lock_branch(session: Session, *, org_id: int) -> Organization | None:
    """The branch row, locked until commit on PostgreSQL so two newcomers count seats in turn.

    (SQLite has one writer at a time, so it needs no lock.)
    """
    return session.exec(
        select(Organization).where(Organization.id == org_id).with_for_update()
    ).first()


def find_invitation(session: Session, *, token: str) -> Invitation | None:
    """The invitation a user's token stands for (looked up by its hash)."""
    if not token or len(token) > 64:
        return None
    return session.get(Invitation, token_digest(token))


def redeem_invitation(session: Session, *, token: str, now: datetime) -> Invitation:
    """Use a token once; raises InvitationUnknown/Expired/Used or BranchLinkFull.

    The use is counted by one conditional UPDATE (``uses < max_uses``), written before
    anything is read, so two processes redeeming at once can never exceed the cap.
    """
    if not token or len(token) > 64:
        raise InvitationUnknown(token)
    digest = token_digest(token)
    claimed = session.exec(
        update(Invitation)
        .where(
            and_(
                col(Invitation.token) == digest,
                col(Invitation.uses) < col(Invitation.max_uses),
                col(Invitation.expires_at) > now,
            )
        )
        .values(uses=Invitation.uses + 1, last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    invitation = session.exec(
        select(Invitation)
        .where(Invitation.token == digest)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if invitation is None:
        raise InvitationUnknown(token)
    if claimed.rowcount == 1:
        return invitation
    if invitation.expires_at <= now:
        raise InvitationExpired(token)
    if invitation.kind == "branch":
        raise BranchLinkFull(token)
    raise InvitationUsed(token)


def invitations_used(session: Session, *, round_id: int) -> int:
    """How many times the round's invitations have been redeemed (for the organizer)."""
    total = session.exec(
        select(func.coalesce(func.sum(Invitation.uses), 0)).where(Invitation.round_id == round_id)
    ).one()
    return int(total)
