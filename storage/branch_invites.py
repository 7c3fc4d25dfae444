"""Fresh invitation links for a branch's unregistered people (issue 14: the secretary's 🔗).

Only a hash of each token is stored (storage.links), so a link handed out earlier cannot be
shown again: asking mints a new single-use personal link per person, and their earlier
unused link stops working (``storage.rounds.invitation_for``), leaving one valid link each.
The caller audits the issue in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, or_, select

from storage.models import Person, PersonRole, TelegramAccount
from storage.rounds import invitation_for
from surveys.categories import Role

# Roles that make someone one of the branch's own people; township staff (inspectors,
# organizers, work-group leaders, county reviewers) are never on a branch's list.
BRANCH_ROLES = (Role.MEMBER, Role.MASS, Role.COMMITTEE, Role.SECRETARY)


@dataclass(frozen=True)
class BranchInvite:
    """One unregistered person of the branch and the plaintext token just issued."""

    person_id: int
    name: str
    phone: str
    token: str


def unregistered_in_branch(*, session: Session, org_id: int) -> list[Person]:
    """Named roster people of the branch who have not registered with the bot, by name."""
    in_branch = select(PersonRole.person_id).where(
        PersonRole.org_id == org_id,
        col(PersonRole.role).in_([role.value for role in BRANCH_ROLES]),
    )
    registered = select(TelegramAccount.person_id)
    statement = (
        select(Person)
        .where(
            or_(Person.org_id == org_id, col(Person.id).in_(in_branch)),
            Person.anonymous == False,  # noqa: E712  (SQL comparison)
            col(Person.id).not_in(registered),
        )
        .order_by(Person.name, Person.id)
    )
    # Sorted here, not by the database's collation, so both backends list the same order.
    return sorted(session.exec(statement).all(), key=lambda p: (p.name, p.id or 0))


def issue_branch_invitations(
    *, session: Session, org_id: int, round_id: int | None, now: datetime, days: int
) -> list[BranchInvite]:
    """A new personal link for each unregistered person of the branch (earlier ones expire)."""
    invites = []
    for person in unregistered_in_branch(session=session, org_id=org_id):
        assert person.id is not None
        issued = invitation_for(session, person_id=person.id, round_id=round_id, now=now, days=days)
        invites.append(BranchInvite(person.id, person.name, person.phone or "", issued.token))
    return invites
