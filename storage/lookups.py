"""Read-only queries of the command line and the demo: counts, the roster to invite.

The CLI (``bot.cli``) and the demo builder (``bot.demo``) only parse and print; every
statement they need is here, taking ``session`` as a keyword.
"""

from __future__ import annotations

from sqlalchemy import case, func
from sqlmodel import Session, col, select

from storage.models import (
    Assignment,
    Organization,
    Person,
    PersonRole,
    RoundInstrument,
    TelegramAccount,
)


def organization_count(*, session: Session) -> int:
    """How many organizations the roster holds."""
    return int(session.exec(select(func.count()).select_from(Organization)).one())


def person_count(*, session: Session) -> int:
    """How many people the roster holds."""
    return int(session.exec(select(func.count()).select_from(Person)).one())


def organization_ids_by_name(*, session: Session) -> dict[str, int]:
    """Every organization's id by its (unique) name."""
    return {
        name: int(org_id)
        for name, org_id in session.exec(select(Organization.name, Organization.id)).all()
    }


def first_person_with_role(*, session: Session, role: str) -> int | None:
    """Some person holding the role (the demo's organizer), or None."""
    return session.exec(select(PersonRole.person_id).where(PersonRole.role == role)).first()


def round_pins(*, session: Session, round_id: int) -> list[RoundInstrument]:
    """The instrument versions the round pinned."""
    return list(
        session.exec(select(RoundInstrument).where(RoundInstrument.round_id == round_id)).all()
    )


def branch_assignments(*, session: Session, round_id: int, org_id: int) -> list[Assignment]:
    """Every assignment about one branch in the round, oldest first."""
    return list(
        session.exec(
            select(Assignment)
            .where(Assignment.round_id == round_id, Assignment.org_id == org_id)
            .order_by(Assignment.id)
        ).all()
    )


def assignment_counts(*, session: Session, round_id: int) -> tuple[int, int]:
    """(assignments, submitted ones) of a round."""
    submitted = func.sum(case((col(Assignment.status) == "submitted", 1), else_=0))
    total, done = session.exec(
        select(func.count(), submitted).where(Assignment.round_id == round_id)
    ).one()
    return int(total), int(done or 0)


# --- The roster to invite ----------------------------------------------------------------------


def roster_people(*, session: Session) -> list[Person]:
    """Everyone on the roster (not the anonymous masses of branch links), by branch."""
    return list(
        session.exec(
            select(Person)
            .where(col(Person.anonymous).is_(False))
            .order_by(Person.org_id, Person.id)
        ).all()
    )


def roles_by_person(*, session: Session) -> dict[int, list[tuple[str, int]]]:
    """Each person's (role, organization) pairs, in the order they were added."""
    roles: dict[int, list[tuple[str, int]]] = {}
    for person_id, role_name, org_id in session.exec(
        select(PersonRole.person_id, PersonRole.role, PersonRole.org_id).order_by(PersonRole.id)
    ).all():
        roles.setdefault(person_id, []).append((role_name, org_id))
    return roles


def organization_named(*, session: Session, name: str) -> Organization | None:
    """The organization with exactly this name, or None."""
    return session.exec(select(Organization).where(Organization.name == name)).first()


def organizations(*, session: Session, name: str | None = None) -> list[Organization]:
    """Every organization (or the one with this name), by id."""
    statement = select(Organization).order_by(Organization.id)
    if name is not None:
        statement = statement.where(Organization.name == name)
    return list(session.exec(statement).all())


def registered_person_ids(*, session: Session) -> set[int]:
    """Everyone bound to a Telegram account."""
    return set(session.exec(select(TelegramAccount.person_id)).all())
