"""What the reminder and digest planner (``jobs.planner``) reads: recipients and the outbox.

Read-only: the planner renders texts from these rows and enqueues them itself
(``storage.outbox.enqueue``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlmodel import col, select

from storage.db import Session
from storage.models import (
    Assignment,
    Organization,
    OutboxMessage,
    Person,
    PersonRole,
    Round,
    RoundInstrument,
    RoundPhase,
    TelegramAccount,
)
from surveys.categories import Role
from surveys.i18n import DEFAULT_LOCALE

ID_BATCH = 500  # ids per IN (…) list, far below SQLite's and PostgreSQL's bind limits


@dataclass(frozen=True)
class Recipient:
    """A person the bot can reach: their chat and language."""

    person_id: int
    name: str
    chat_id: int
    locale: str


@dataclass(frozen=True)
class Owed:
    """One survey a reachable person still owes, with the branch it is about."""

    assignment_id: int
    recipient: Recipient
    branch: str
    phase: str


def reachable(*, session: Session, person_ids: Iterable[int]) -> dict[int, Recipient]:
    """The people among these who registered and have not blocked the bot."""
    ids = sorted(set(person_ids))
    found: dict[int, Recipient] = {}
    for start in range(0, len(ids), ID_BATCH):
        rows = session.exec(
            select(Person.id, Person.name, TelegramAccount.chat_id, TelegramAccount.language)
            .join(TelegramAccount, col(TelegramAccount.person_id) == col(Person.id))
            .where(
                col(Person.id).in_(ids[start : start + ID_BATCH]),
                col(TelegramAccount.blocked_at).is_(None),
            )
        ).all()
        for person_id, name, chat_id, language in rows:
            found[person_id] = Recipient(person_id, name, chat_id, language or DEFAULT_LOCALE)
    return found


def role_holders(*, session: Session, role: Role) -> list[tuple[int, int]]:
    """(person, organization) for everyone holding the role, in a stable order."""
    rows = session.exec(
        select(PersonRole.person_id, PersonRole.org_id)
        .where(col(PersonRole.role) == role.value)
        .order_by(col(PersonRole.person_id), col(PersonRole.org_id))
    ).all()
    return [(person_id, org_id) for person_id, org_id in rows]


def open_rounds(*, session: Session) -> list[Round]:
    """Rounds that are open now."""
    return list(
        session.exec(select(Round).where(col(Round.status) == "open").order_by(col(Round.id))).all()
    )


def round_phases(*, session: Session, round_id: int) -> list[RoundPhase]:
    """The phases (windows and deadlines) of a round."""
    return list(session.exec(select(RoundPhase).where(col(RoundPhase.round_id) == round_id)).all())


def instrument_phases(*, session: Session, round_id: int) -> dict[str, str]:
    """The phase of each instrument the round pinned, by instrument id."""
    return {
        row.instrument_id: row.phase
        for row in session.exec(
            select(RoundInstrument).where(col(RoundInstrument.round_id) == round_id)
        ).all()
    }


def owed_assignments(
    *, session: Session, round_id: int, instrument_phase: Mapping[str, str], instruments: list[str]
) -> list[Owed]:
    """Unsubmitted surveys of these instruments owed by people the bot can reach.

    One joined query, so a county's fifty thousand assignments need no list of ids.
    Submitted assignments are left out: someone who has answered gets no more nudges.
    """
    rows = session.exec(
        select(
            Assignment.id,
            Assignment.instrument_id,
            Organization.name,
            Person.id,
            Person.name,
            TelegramAccount.chat_id,
            TelegramAccount.language,
        )
        .join(Person, col(Person.id) == col(Assignment.person_id))
        .join(TelegramAccount, col(TelegramAccount.person_id) == col(Person.id))
        .join(Organization, col(Organization.id) == col(Assignment.org_id))
        .where(
            col(Assignment.round_id) == round_id,
            col(Assignment.status) != "submitted",
            col(Assignment.instrument_id).in_(instruments),
            col(TelegramAccount.blocked_at).is_(None),
        )
        .order_by(col(Person.id), col(Assignment.id))
    ).all()
    return [
        Owed(
            assignment_id,
            Recipient(person_id, name, chat_id, language or DEFAULT_LOCALE),
            branch,
            instrument_phase[instrument_id],
        )
        for assignment_id, instrument_id, branch, person_id, name, chat_id, language in rows
    ]


def existing_keys(*, session: Session, keys: Iterable[str]) -> set[str]:
    """Which of these dedup keys the outbox already holds."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), ID_BATCH):
        batch = wanted[start : start + ID_BATCH]
        found.update(
            session.exec(
                select(OutboxMessage.dedup_key).where(col(OutboxMessage.dedup_key).in_(batch))
            ).all()
        )
    return found


def slot_keys(*, session: Session, round_id: int, slot: str) -> set[str]:
    """Dedup keys already in the outbox for this round and slot (any kind, any recipient)."""
    rows = session.exec(
        select(OutboxMessage.dedup_key).where(
            col(OutboxMessage.round_id) == round_id,
            col(OutboxMessage.slot).endswith(slot, autoescape=True),
        )
    ).all()
    return set(rows)


def people_by_home(*, session: Session, person_ids: Iterable[int]) -> dict[str, list[str]]:
    """People's names grouped by the organization the roster lists them in, both by name.

    What /remind tells an organizer about who was reminded (issue 14): the township's own
    staff under the 镇党委, a branch's people under their branch.
    """
    ids = sorted(set(person_ids))
    grouped: dict[str, list[str]] = {}
    for start in range(0, len(ids), ID_BATCH):
        rows = session.exec(
            select(Organization.name, Person.name)
            .join(Organization, col(Organization.id) == col(Person.org_id))
            .where(col(Person.id).in_(ids[start : start + ID_BATCH]))
        ).all()
        for org_name, name in rows:
            grouped.setdefault(org_name, []).append(name)
    return {org: sorted(names) for org, names in sorted(grouped.items())}
