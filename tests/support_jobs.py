"""The township the jobs tests share (planner, delivery, end to end), and a movable clock.

Not a test module: tests/test_jobs_*.py import from here, never from each other.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import select

from jobs.runner import enqueue_due
from storage.db import transaction
from storage.models import (
    Assignment,
    OutboxMessage,
    Round,
    RoundPhase,
    TelegramAccount,
)
from tests.factories import add_open_round, add_org, add_person, assign

ZONE = ZoneInfo("Asia/Shanghai")


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Beijing-time wall clock reading as an aware UTC datetime."""
    return datetime(year, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


@dataclass
class Township:
    """Ids of the township's round, branches and people (names → ids and chats)."""

    round_id: int
    orgs: dict[str, int] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)
    chats: dict[str, int] = field(default_factory=dict)
    assignments: dict[tuple[str, str], int] = field(default_factory=dict)

    def chat_of(self, name: str) -> int:
        """The private chat of a registered person."""
        return self.chats[name]


# name, branch, roles, chat (None = never registered), surveys (instrument, audience)
PEOPLE: list[tuple[str, str, tuple[str, ...], int | None, tuple[tuple[str, str], ...]]] = [
    ("王组织", "镇党委", ("organizer",), 900, ()),
    (
        "李书记",
        "东村党支部",
        ("secretary", "member", "committee"),
        101,
        (("satisfaction", "members"), ("self_evaluation", "committee")),
    ),
    ("党员甲", "东村党支部", ("member",), 102, (("satisfaction", "members"),)),
    ("党员乙", "东村党支部", ("member",), 103, (("satisfaction", "members"),)),
    ("党员丙", "东村党支部", ("member",), None, (("satisfaction", "members"),)),
    ("代表丁", "东村党支部", ("mass",), 104, (("satisfaction", "masses"),)),
    ("赵书记", "西村党支部", ("secretary", "member"), 201, (("satisfaction", "members"),)),
    ("党员戊", "西村党支部", ("member",), 202, (("satisfaction", "members"),)),
]


def build_township(
    engine: Engine,
    *,
    opened: datetime,
    deadlines: dict[str, datetime],
    options: dict[str, Any] | None = None,
) -> Township:
    """Two villages under a township committee, with an open round and its assignments.

    东村: 5 members and 5 representatives on the roster → members need 4, masses 4,
    the self-evaluation its one committee member. 西村: 2 members → members need 2.
    """
    with transaction(engine) as session:
        committee = add_org(session, "镇党委", "committee")
        east = add_org(
            session, "东村党支部", "village", members=5, representatives=5, parent_id=committee.id
        )
        west = add_org(session, "西村党支部", "village", members=2, parent_id=committee.id)
        orgs = {"镇党委": committee, "东村党支部": east, "西村党支部": west}
        round_ = add_open_round(session, now=opened, days=30)
        round_.options = options or {}
        round_.opened_at = opened
        session.add(round_)
        for phase in session.exec(select(RoundPhase).where(RoundPhase.round_id == round_.id)):
            phase.opens_at = opened
            phase.deadline = deadlines.get(phase.phase, phase.deadline)
            session.add(phase)
        town = Township(round_id=round_.id)  # type: ignore[arg-type]
        town.orgs = {name: org.id for name, org in orgs.items()}  # type: ignore[misc]
        for name, branch, roles, chat, surveys in PEOPLE:
            person = add_person(session, name, orgs[branch], *roles)
            town.people[name] = person.id  # type: ignore[assignment]
            if chat is not None:
                town.chats[name] = chat
                session.add(
                    TelegramAccount(
                        person_id=person.id,  # type: ignore[arg-type]
                        telegram_user_id=chat,
                        chat_id=chat,
                        bound_via="invitation",
                    )
                )
            for instrument, audience in surveys:
                a = assign(session, round_, person, orgs[branch], instrument, audience)
                town.assignments[(name, instrument)] = a.id  # type: ignore[assignment]
    return town


def submit(engine: Engine, town: Township, name: str, instrument: str = "satisfaction") -> None:
    """Mark someone's survey submitted (what storage.responses.submit leaves behind)."""
    with transaction(engine) as session:
        assignment = session.get(Assignment, town.assignments[(name, instrument)])
        assert assignment is not None
        assignment.status = "submitted"
        session.add(assignment)


def close_round(engine: Engine, town: Township) -> None:
    """Close the round (no more digests)."""
    with transaction(engine) as session:
        round_ = session.get(Round, town.round_id)
        assert round_ is not None
        round_.status = "closed"
        session.add(round_)


def outbox_rows(engine: Engine, kind: str | None = None) -> list[OutboxMessage]:
    """Every outbox row (of one kind), oldest first."""
    with transaction(engine) as session:
        statement = select(OutboxMessage).order_by(OutboxMessage.id)
        if kind is not None:
            statement = statement.where(OutboxMessage.kind == kind)
        return list(session.exec(statement).all())


def per_chat(rows: list[OutboxMessage]) -> Counter[int]:
    """How many rows each chat has."""
    return Counter(row.chat_id for row in rows)


ALL_PHASES = ("self_evaluation", "satisfaction", "inspection", "superior_scoring")


def same_deadline(deadline: datetime) -> dict[str, datetime]:
    """Every phase of the round ends at the same moment."""
    return dict.fromkeys(ALL_PHASES, deadline)


def run_planner(engine: Engine, start: datetime, end: datetime, step: timedelta) -> None:
    """The planner ticking from start to end (inclusive), as the scheduler would."""
    now = start
    while now <= end:
        enqueue_due(engine, now=now, zone=ZONE)
        now += step


def texts_for(engine: Engine, chat: int, kind: str | None = None) -> list[str]:
    """The texts enqueued for one chat (of one kind)."""
    return [row.payload["text"] for row in outbox_rows(engine, kind) if row.chat_id == chat]


class FakeTime:
    """One clock for the deliverer (datetime) and the limiter (seconds); sleeping moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
