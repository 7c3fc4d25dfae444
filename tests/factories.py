"""Small builders of roster rows for tests that need a database in a known state."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from storage.models import (
    Assignment,
    Organization,
    Person,
    PersonRole,
    Round,
    RoundInstrument,
    RoundPhase,
)
from storage.types import utcnow
from surveys.instruments import get_instrument

PHASE_OF = {
    "self_evaluation": "self_evaluation",
    "satisfaction": "satisfaction",
    "inspection_village": "inspection",
    "inspection_two_new": "inspection",
    "superior_scoring": "superior_scoring",
}


def add_org(
    session: Session, name: str, category: str = "village", **counts: object
) -> Organization:
    """An organization with the given counts (members, representatives, staff, …)."""
    org = Organization(name=name, category=category, **counts)  # type: ignore[arg-type]
    session.add(org)
    session.flush()
    return org


def add_person(
    session: Session, name: str, org: Organization, *roles: str, phone: str | None = None
) -> Person:
    """A person of an organization holding the given roles there."""
    person = Person(name=name, phone=phone or f"139{abs(hash(name)) % 10**8:08d}", org_id=org.id)  # type: ignore[arg-type]
    session.add(person)
    session.flush()
    for role in roles:
        session.add(PersonRole(person_id=person.id, org_id=org.id, role=role))  # type: ignore[arg-type]
    session.flush()
    return person


def add_open_round(
    session: Session, name: str = "2027年度", *, now: datetime | None = None, days: int = 7
) -> Round:
    """An open round pinning every bundled instrument, each phase open for `days` days."""
    now = now or utcnow()
    round_ = Round(name=name, status="open", opened_at=now)
    session.add(round_)
    session.flush()
    for instrument_id, phase in PHASE_OF.items():
        version = get_instrument(instrument_id).version
        session.add(
            RoundInstrument(
                round_id=round_.id, instrument_id=instrument_id, version=version, phase=phase
            )  # type: ignore[arg-type]
        )
    for phase in sorted(set(PHASE_OF.values())):
        session.add(
            RoundPhase(
                round_id=round_.id,  # type: ignore[arg-type]
                phase=phase,
                opens_at=now - timedelta(days=1),
                deadline=now + timedelta(days=days),
            )
        )
    session.flush()
    return round_


def assign(
    session: Session,
    round_: Round,
    person: Person,
    org: Organization,
    instrument_id: str,
    audience: str,
) -> Assignment:
    """An assignment of one instrument about one branch to one person."""
    assignment = Assignment(
        round_id=round_.id,  # type: ignore[arg-type]
        person_id=person.id,  # type: ignore[arg-type]
        org_id=org.id,  # type: ignore[arg-type]
        instrument_id=instrument_id,
        audience=audience,
    )
    session.add(assignment)
    session.flush()
    return assignment
