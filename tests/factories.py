"""Builders of database states for tests: roster rows, rounds, answered surveys, townships.

Every builder shared by more than one test module lives here (test modules import nothing
from each other). The townships:

* ``build_scored_township``: three branches with hand-counted ballots, self-evaluations and
  inspections, for the tallies, reports, charts and exports.
* ``build_graded_township``: branches scored by the committee with given totals, for quotas.
* ``build_reminder_township``: two villages with registered chats and open assignments, for
  the reminder planner and the outbox delivery.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, select

from jobs.runner import enqueue_due
from storage.db import transaction
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
from storage.remedies import order_rerun
from storage.responses import save_answer, submit
from storage.types import utcnow
from surveys.instruments import AnswerValue, get_instrument

D = Decimal
PHASE_OVER = datetime(2999, 1, 1, tzinfo=UTC)  # after every deadline (storage.ballots)
_serial = iter(range(10**6))

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


# --- Answered surveys and the scored township --------------------------------------------

Q1_5 = ("q1", "q2", "q3", "q4", "q5")


def new_phone() -> str:
    """A phone number no other builder has handed out in this test run."""
    return f"147{next(_serial):08d}"


def cast_ballot(
    session: Session,
    round_: Round,
    org: Organization,
    five_goods: str,
    awareness: str = "aware",
    participation: str = "often",
    audience: str = "members",
) -> None:
    """One anonymous ballot: the same answer to Q1–Q5, then Q6–Q8, through the real submit."""
    person = add_person(session, f"投票人{next(_serial)}", org, "member", phone=new_phone())
    assignment = assign(session, round_, person, org, "satisfaction", audience)
    answers = {q: five_goods for q in Q1_5} | {
        "q6": "good",
        "q7": awareness,
        "q8": participation,
    }
    for item_id, choice in answers.items():
        save_answer(
            session,
            assignment_id=assignment.id,
            item_id=item_id,
            value=AnswerValue(choice=choice),  # type: ignore[arg-type]
        )
    # Counted as at the end of the phase: the box folds everything after the commit.
    submit(session, assignment_id=assignment.id, now=PHASE_OVER)  # type: ignore[arg-type]


def submit_points(
    session: Session,
    round_: Round,
    org: Organization,
    person: Person,
    instrument_id: str,
    points: dict[str, Decimal],
    audience: str,
) -> None:
    """A named points form (self-evaluation, superior scoring) with the given item points."""
    assignment = assign(session, round_, person, org, instrument_id, audience)
    for item_id, value in points.items():
        save_answer(
            session,
            assignment_id=assignment.id,
            item_id=item_id,
            value=AnswerValue(points=value),  # type: ignore[arg-type]
        )
    submit(session, assignment_id=assignment.id, now=utcnow())  # type: ignore[arg-type]


def points_for_total(instrument_id: str, total: Decimal) -> dict[str, Decimal]:
    """Item points adding up to total: full marks on the first items, the rest on the next."""
    remaining = total
    points: dict[str, Decimal] = {}
    for item in get_instrument(instrument_id).items:
        if item.kind != "points":
            continue
        assert item.max_points is not None
        given = min(item.max_points, remaining)
        points[item.id] = given
        remaining -= given
    assert remaining == 0
    return points


def submit_inspection(
    session: Session,
    round_: Round,
    org: Organization,
    inspector: Person,
    deduct_sections: Sequence[str] = (),
    instrument_id: str = "inspection_village",
) -> None:
    """An inspection sheet deducting every point of the named dimensions, nothing elsewhere."""
    instrument = get_instrument(instrument_id)
    assignment = assign(session, round_, inspector, org, instrument_id, "inspectors")
    for section in instrument.sections:
        for item in section.items:
            if item.kind != "deduction":
                continue
            if section.id in deduct_sections:
                value = AnswerValue(deduction=item.max_points, reason="台账缺失")
            else:
                value = AnswerValue(deduction=D(0))
            save_answer(session, assignment_id=assignment.id, item_id=item.id, value=value)  # type: ignore[arg-type]
    submit(session, assignment_id=assignment.id, now=utcnow())  # type: ignore[arg-type]


SELF_A = {
    "leader": D(18),
    "work_ideas": D(9),
    "work_system": D(13),
    "activity_venue": D(9),
    "support_mechanism": D(9),
    "performance": D(18),
    "mass_evaluation": D(14),
}  # 90
SELF_B = {
    "leader": D(17),
    "work_ideas": D(8),
    "work_system": D(12),
    "activity_venue": D(9),
    "support_mechanism": D(9),
    "performance": D(17),
    "mass_evaluation": D(13),
}  # 85


def rerun(session: Session, round_id: int, org_id: int, *, days: int = 3) -> None:
    """An organizer-less 补测 of one branch, open for ``days`` days from now."""
    now = utcnow()
    order_rerun(
        session,
        round_id=round_id,
        org_id=org_id,
        deadline=now + timedelta(days=days),
        reason="补测",
        person_id=None,
        now=now,
    )


def build_scored_township(session: Session) -> dict[str, int]:
    """东村 (six ballots, two self-evaluations, two inspections), 西村 (three ballots, one
    self-evaluation) and 南社区 (assigned, nothing answered yet)."""
    town = add_org(session, "董浜镇党委", "committee")
    east = add_org(session, "东村党支部", members=10, representatives=5, parent_id=town.id)
    west = add_org(session, "西村党支部", members=8, representatives=4, parent_id=town.id)
    south = add_org(
        session, "南社区党支部", "community", members=6, representatives=5, parent_id=town.id
    )
    round_ = add_open_round(session)
    # 东村: 4 ballots 满意 on Q1–Q5, 1 基本满意, 1 不满意.
    for awareness, participation in (
        ("aware", "often"),
        ("aware", "often"),
        ("aware", "sometimes"),
        ("partly_aware", "never"),
    ):
        cast_ballot(session, round_, east, "satisfied", awareness, participation)
    cast_ballot(session, round_, east, "basically_satisfied", "partly_aware", "never")
    cast_ballot(session, round_, east, "dissatisfied", "unaware", "never", audience="masses")
    a = add_person(session, "张书记", east, "committee", "secretary", phone=new_phone())
    b = add_person(session, "李委员", east, "committee", phone=new_phone())
    submit_points(session, round_, east, a, "self_evaluation", SELF_A, "committee")
    submit_points(session, round_, east, b, "self_evaluation", SELF_B, "committee")
    inspector_1 = add_person(session, "王组长", town, "inspector", phone=new_phone())
    inspector_2 = add_person(session, "赵干事", town, "inspector", phone=new_phone())
    submit_inspection(session, round_, east, inspector_1, deduct_sections=["basics"])
    submit_inspection(session, round_, east, inspector_2)
    # 西村: three ballots only — a small group.
    for _ in range(3):
        cast_ballot(session, round_, west, "satisfied")
    c = add_person(session, "钱书记", west, "committee", "secretary", phone=new_phone())
    submit_points(
        session,
        round_,
        west,
        c,
        "self_evaluation",
        points_for_total("self_evaluation", D(70)),
        "committee",
    )
    # 南社区: one member assigned, nobody answered.
    d = add_person(session, "孙党员", south, "member", phone=new_phone())
    assign(session, round_, d, south, "satisfaction", "members")
    return {
        "round": round_.id,
        "town": town.id,
        "east": east.id,
        "west": west.id,
        "south": south.id,
        "inspector_1": inspector_1.id,
        "secretary_east": a.id,
        "secretary_west": c.id,
        "member_south": d.id,
    }  # type: ignore[dict-item]


def build_graded_township(session: Session, scores: Sequence[int]) -> tuple[int, list[int]]:
    """Complete branches scored by the committee with these superior totals, in order.

    Each branch has one member, who answered the survey (满意), one self-evaluation and one
    inspection without deductions: every part a grade needs (docs/rules.md §3, §6.3).
    """
    town = add_org(session, "某镇党委", "committee")
    organizer = add_person(session, "陈华", town, "organizer", phone=new_phone())
    inspector = add_person(session, "周检", town, "inspector", phone=new_phone())
    round_ = add_open_round(session, "2028年度")
    org_ids = []
    for index, score in enumerate(scores):
        branch = add_org(session, f"第{index + 1}村党支部", parent_id=town.id, members=1)
        points = points_for_total("superior_scoring", D(score))
        submit_points(session, round_, branch, organizer, "superior_scoring", points, "organizers")
        cast_ballot(session, round_, branch, "satisfied")
        secretary = add_person(session, f"书记{index + 1}", branch, "committee", phone=new_phone())
        self_points = points_for_total("self_evaluation", D(score))
        submit_points(
            session, round_, branch, secretary, "self_evaluation", self_points, "committee"
        )
        submit_inspection(session, round_, branch, inspector)
        org_ids.append(branch.id)
    return round_.id, org_ids  # type: ignore[return-value]


# --- The reminder township (planner and delivery) ------------------------------------------

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


def build_reminder_township(
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


def mark_submitted(
    engine: Engine, town: Township, name: str, instrument: str = "satisfaction"
) -> None:
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
