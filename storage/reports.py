"""Read-only queries of the reports, the workbook and the command line.

The bot's report handlers and the workbook renderer (``bot.workbook``) only render; every
statement they need is here, taking ``session`` as a keyword.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from storage.models import (
    Answer,
    Assignment,
    Organization,
    Person,
    RectificationItem,
    Response,
    TelegramAccount,
)
from storage.tallies import INSPECTIONS

_CHUNK = 1000  # ids per IN (...) list, well below every engine's parameter limit


# --- Names ------------------------------------------------------------------------------------


def org_names(*, session: Session, org_ids: Collection[int] | None = None) -> dict[int, str]:
    """Organization names by id: the given ones, or every organization when None."""
    statement = select(Organization.id, Organization.name)
    if org_ids is not None:
        if not org_ids:
            return {}
        statement = statement.where(col(Organization.id).in_(list(org_ids)))
    return {int(org_id): name for org_id, name in session.exec(statement).all()}


def org_name(*, session: Session, org_id: int) -> str | None:
    """One organization's name, or None when it does not exist."""
    org = session.get(Organization, org_id)
    return org.name if org is not None else None


def person_names(*, session: Session, person_ids: Iterable[int]) -> dict[int, str]:
    """People's names by id."""
    ids = list(person_ids)
    if not ids:
        return {}
    rows = session.exec(select(Person.id, Person.name).where(col(Person.id).in_(ids))).all()
    return {int(person_id): name for person_id, name in rows}


def rectification_item(*, session: Session, item_id: int) -> RectificationItem | None:
    """One ledger line, or None."""
    return session.get(RectificationItem, item_id)


# --- Named responses for the workbook ----------------------------------------------------------


@dataclass(frozen=True)
class FormLine:
    """One submitted named form: who filled it in for which branch, its total and time."""

    response_id: int
    org_id: int
    scorer: str
    total: Decimal | None
    submitted_at: datetime | None


def submitted_forms(*, session: Session, round_id: int, instrument_id: str) -> list[FormLine]:
    """Every submitted response of one instrument in the round, by branch and scorer name."""
    rows = session.exec(
        select(Response.id, Response.org_id, Person.name, Response.total, Response.submitted_at)
        .join(Person, Person.id == Response.person_id)  # type: ignore[arg-type]
        .where(Response.round_id == round_id, Response.instrument_id == instrument_id)
        .order_by(Response.org_id, Person.name, Response.id)
    ).all()
    return [FormLine(int(rid), org_id, name, total, at) for rid, org_id, name, total, at in rows]


def points_by_response(*, session: Session, response_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The points given per item, by response."""
    found: dict[int, dict[str, Any]] = defaultdict(dict)
    for chunk in range(0, len(response_ids), _CHUNK):
        rows = session.exec(
            select(Answer.response_id, Answer.item_id, Answer.points).where(
                col(Answer.response_id).in_(response_ids[chunk : chunk + _CHUNK])
            )
        ).all()
        for response_id, item_id, value in rows:
            found[response_id][item_id] = value
    return dict(found)


@dataclass(frozen=True)
class InspectionLine:
    """One inspector's answer to one item of an inspection sheet."""

    org_id: int
    inspector: str
    instrument_id: str
    item_id: str
    deduction: Decimal | None
    reason: str | None
    score: Decimal | None


def inspection_lines(*, session: Session, round_id: int) -> list[InspectionLine]:
    """Every inspection answer of the round with its inspector's name (one query)."""
    rows = session.exec(
        select(Response.org_id, Person.name, Response.instrument_id, Answer)
        .join(Response, Response.id == Answer.response_id)  # type: ignore[arg-type]
        .join(Person, Person.id == Response.person_id)  # type: ignore[arg-type]
        .where(Response.round_id == round_id, col(Response.instrument_id).in_(INSPECTIONS))
        .order_by(Response.org_id, Person.name, Answer.id)
    ).all()
    return [
        InspectionLine(org_id, name, instrument_id, a.item_id, a.deduction, a.reason, a.score)
        for org_id, name, instrument_id, a in rows
    ]


# --- Who has not taken part yet (未参评名单) --------------------------------------------------


@dataclass(frozen=True)
class Owed:
    """A response someone on the roster still owes about a branch, and whether the bot reaches
    them. Names only: what anyone answered is never read here."""

    org_id: int
    person_id: int
    name: str
    audience: str
    instrument_id: str
    registered: bool
    blocked: bool


def owed_responses(*, session: Session, round_id: int, org_ids: Collection[int]) -> list[Owed]:
    """Every response still owed in the round about the given branches, by person.

    Participation is public (docs/anonymity.md: /coverage shows who has not taken part), so
    this lists names; anonymous participants who came by a branch link have none to list.
    """
    ids = sorted(org_ids)
    found: list[Owed] = []
    for chunk in range(0, len(ids), _CHUNK):
        statement = (
            select(Assignment, Person.name, TelegramAccount.id, TelegramAccount.blocked_at)
            .join(Person, Person.id == Assignment.person_id)  # type: ignore[arg-type]
            .outerjoin(TelegramAccount, TelegramAccount.person_id == Person.id)  # type: ignore[arg-type]
            .where(
                Assignment.round_id == round_id,
                col(Assignment.org_id).in_(ids[chunk : chunk + _CHUNK]),
                Assignment.status != "submitted",
                Person.anonymous == False,  # noqa: E712  (SQL comparison)
            )
        )
        for assignment, name, account, blocked_at in session.exec(statement).all():
            found.append(
                Owed(
                    org_id=assignment.org_id,
                    person_id=assignment.person_id,
                    name=name,
                    audience=assignment.audience,
                    instrument_id=assignment.instrument_id,
                    registered=account is not None,
                    blocked=blocked_at is not None,
                )
            )
    return found


def round_name(*, session: Session, round_id: int) -> str | None:
    """A round's name, or None when it does not exist."""
    from storage.models import Round

    round_ = session.get(Round, round_id)
    return round_.name if round_ is not None else None
