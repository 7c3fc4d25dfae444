"""Participation counts per branch and audience (``assignment_count``, issue 12) stay exact.

Database triggers on ``assignment`` keep the counts, so whatever writes an assignment —
roster import and sync, a mass representative's link, a tap, a submission, a 补测, a
person deleted, a fixture moving a row — the counts equal a recomputation from
``assignment`` after every step. Migration 0008 backfills them and its downgrade drops
the table and the triggers. On PostgreSQL, two writes of one branch at once (submissions,
first assignments, deletions of the last two) both count.
"""

from __future__ import annotations

import random
import re
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, delete, event, func, inspect, text, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from storage.db import alembic_config, transaction, upgrade
from storage.models import Assignment, AssignmentCount, Organization, Person, Round
from storage.participation import assigned_coverage, round_coverage
from storage.registration import add_mass_assignments
from storage.responses import save_answer, submit
from storage.roster import import_roster
from storage.rounds import close_round, sync_assignments
from storage.types import utcnow
from surveys.categories import Audience
from surveys.instruments import AnswerValue, get_instrument
from tests.factories import (
    add_open_round,
    add_org,
    add_person,
    assign,
    build_scored_township,
    points_for_total,
    rerun,
)
from tests.support_races import wait_until, waiting_on_a_lock

NOW = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)
SATISFACTION = get_instrument("satisfaction")
ORG_HEADER = ["名称", "类别", "党员人数", "代表人数", "职工人数", "职代会", "上级"]
PEOPLE_HEADER = ["姓名", "手机", "组织", "角色"]
TOWN = "计数镇党委"
BRANCHES = ["计数一村党支部", "计数二村党支部", "计数社区党支部"]
ROLES = ["党员", "党员", "党员", "群众代表", "班子成员、党员", "书记、班子成员、党员"]
Counts = dict[tuple[int, int, str], tuple[int, int]]  # (round, org, audience) → counts


def counted(session: Session) -> Counts:
    """The counts recomputed from ``assignment``: what coverage grouped before migration 0008."""
    table = Assignment.__table__  # type: ignore[attr-defined]
    submitted = func.sum(text("CASE WHEN status = 'submitted' THEN 1 ELSE 0 END"))
    rows = session.execute(
        sa_select(
            table.c.round_id, table.c.org_id, table.c.audience, func.count(), submitted
        ).group_by(table.c.round_id, table.c.org_id, table.c.audience)
    ).all()
    return {(r, o, a): (int(n), int(s)) for r, o, a, n, s in rows}


def kept(session: Session) -> Counts:
    """The counts the triggers kept."""
    rows = session.exec(select(AssignmentCount)).all()
    return {(c.round_id, c.org_id, c.audience): (c.assigned, c.submitted) for c in rows}


def assert_counts_match(engine: Engine) -> Counts:
    """Kept equals recomputed, row for row (no row is left at zero), and coverage says so."""
    with Session(engine) as session:
        expected, actual = counted(session), kept(session)
        assert actual == expected
        for round_ in session.exec(select(Round)).all():
            coverage = assigned_coverage(session, round_=round_)
            mine = {(o, a): n for (r, o, a), n in expected.items() if r == round_.id}
            assert set(coverage) == {o for o, _ in mine}
            for org_id, branch in coverage.items():
                for audience, cov in branch.coverage.items():
                    assert cov.respondents == mine.get((org_id, audience.value), (0, 0))[1]
    return actual


# --- Through a random sequence of real operations ---------------------------------------------


class _Roster:
    """A township's roster as CSV files, changed and re-imported step by step."""

    def __init__(self, folder: Path, rng: random.Random) -> None:
        self.folder, self.rng, self.serial = folder, rng, 0
        self.people: dict[str, tuple[str, str, str]] = {}  # phone → (name, branch, roles)
        self.orgs = [[TOWN, "党委", "", "", "", "", ""]] + [
            [name, "社区" if "社区" in name else "村", "30", "20", "", "否", TOWN]
            for name in BRANCHES
        ]
        self.people["13900000000"] = ("计数干事", TOWN, "组织干事")
        self.people["13900000001"] = ("计数工作组", TOWN, "工作组")
        for _ in range(12):
            self.add()

    def add(self) -> None:
        self.serial += 1
        phone = f"1390001{self.serial:04d}"
        branch = self.rng.choice(BRANCHES)
        self.people[phone] = (f"人员{self.serial}", branch, self.rng.choice(ROLES))

    def move(self) -> None:
        """Someone changes branch and, maybe, roles (their old assignments stay)."""
        phone = self.rng.choice([p for p, (_, org, _) in self.people.items() if org != TOWN])
        name = self.people[phone][0]
        self.people[phone] = (name, self.rng.choice(BRANCHES), self.rng.choice(ROLES))

    def write(self) -> list[Path]:
        files = []
        for name, rows in (
            ("orgs.csv", [ORG_HEADER, *self.orgs]),
            (
                "people.csv",
                [PEOPLE_HEADER, *([n, p, o, r] for p, (n, o, r) in self.people.items())],
            ),
        ):
            path = self.folder / name
            path.write_text("\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")
            files.append(path)
        return files


def _import(engine: Engine, roster: _Roster, round_ids: list[int]) -> None:
    with transaction(engine) as session:
        report = import_roster(session, roster.write(), now=NOW)
        assert report.ok, report.problems
        for round_id in round_ids:
            if session.get(Round, round_id).status != "closed":  # type: ignore[union-attr]
                sync_assignments(session, round_id)


def _open_assignments(session: Session, instrument_id: str | None = None) -> list[Assignment]:
    statement = (
        select(Assignment)
        .join(Round, Round.id == Assignment.round_id)  # type: ignore[arg-type]
        .where(Assignment.status != "submitted", Round.status == "open")
        .order_by(Assignment.id)
    )
    if instrument_id is not None:
        statement = statement.where(Assignment.instrument_id == instrument_id)
    return list(session.exec(statement).all())


def _tap(engine: Engine, rng: random.Random, _round_id: int) -> None:
    """A first answer: pending → in_progress (no count moves)."""
    with transaction(engine) as session:
        todo = _open_assignments(session, "satisfaction")
        if todo:
            item = SATISFACTION.items[0]
            value = AnswerValue(choice=rng.choice(item.options).id)
            save_answer(session, assignment_id=rng.choice(todo).id, item_id=item.id, value=value)  # type: ignore[arg-type]


def _submit(engine: Engine, rng: random.Random, _round_id: int) -> None:
    """A satisfaction ballot or a self-evaluation submitted through the real submit."""
    with transaction(engine) as session:
        todo = [
            a
            for a in _open_assignments(session)
            if a.instrument_id in ("satisfaction", "self_evaluation")
        ]
        if not todo:
            return
        assignment = rng.choice(todo)
        if assignment.instrument_id == "satisfaction":
            for item in SATISFACTION.items:
                if item.kind == "choice":
                    value = AnswerValue(choice=rng.choice(item.options).id)
                    save_answer(session, assignment_id=assignment.id, item_id=item.id, value=value)  # type: ignore[arg-type]
        else:
            for item_id, points in points_for_total("self_evaluation", 80).items():  # type: ignore[arg-type]
                value = AnswerValue(points=points)
                save_answer(session, assignment_id=assignment.id, item_id=item_id, value=value)  # type: ignore[arg-type]
        submit(session, assignment_id=assignment.id, now=utcnow())  # type: ignore[arg-type]


def _mass_link(engine: Engine, rng: random.Random, round_id: int) -> None:
    """A mass representative comes by the branch link: a masses assignment is added."""
    with transaction(engine) as session:
        org_id = session.exec(
            select(Organization.id).where(Organization.name == rng.choice(BRANCHES))
        ).one()
        person = Person(name="群众", org_id=org_id, anonymous=True)
        session.add(person)
        session.flush()
        add_mass_assignments(session, person_id=person.id, org_id=org_id, round_id=round_id)  # type: ignore[arg-type]


def _delete_person(engine: Engine, rng: random.Random, _round_id: int) -> None:
    """Someone without a named response is deleted: their assignments go by cascade."""
    with transaction(engine) as session:
        people = session.exec(
            select(Person.id).where(
                Person.anonymous == True,  # noqa: E712  (SQL comparison)
            )
        ).all()
        if people:
            session.execute(delete(Person).where(Person.id == rng.choice(people)))  # type: ignore[arg-type]


def _move_row(engine: Engine, rng: random.Random, _round_id: int) -> None:
    """A write no product path makes (a fixture, a repair): a row changes branch and status."""
    with transaction(engine) as session:
        rows = session.exec(select(Assignment).order_by(Assignment.id)).all()
        orgs = session.exec(select(Organization.id).where(Organization.name.in_(BRANCHES))).all()  # type: ignore[attr-defined]
        row = rng.choice(rows)
        taken = session.exec(
            select(Assignment.org_id).where(
                Assignment.round_id == row.round_id,
                Assignment.person_id == row.person_id,
                Assignment.instrument_id == row.instrument_id,
            )
        ).all()
        orgs = [org_id for org_id in orgs if org_id not in taken or org_id == row.org_id]
        session.execute(
            update(Assignment)
            .where(Assignment.id == row.id)  # type: ignore[arg-type]
            .values(
                org_id=rng.choice(orgs),
                audience=rng.choice([Audience.MEMBERS.value, Audience.MASSES.value]),
                status=rng.choice(["pending", "submitted"]),
            )
        )


def _reopen(engine: Engine, rng: random.Random, _round_id: int) -> None:
    """A submitted row set back to pending, and a pending one deleted (fixtures do both)."""
    with transaction(engine) as session:
        done = session.exec(select(Assignment.id).where(Assignment.status == "submitted")).all()
        if done:
            session.execute(
                update(Assignment)
                .where(Assignment.id == rng.choice(done))  # type: ignore[arg-type]
                .values(status="pending")
            )
        pending = session.exec(select(Assignment.id).where(Assignment.status == "pending")).all()
        if pending:
            session.execute(delete(Assignment).where(Assignment.id == rng.choice(pending)))  # type: ignore[arg-type]


def _rerun(engine: Engine, rng: random.Random, round_id: int) -> None:
    with transaction(engine) as session:
        org_id = session.exec(
            select(Organization.id).where(Organization.name == rng.choice(BRANCHES))
        ).one()
        rerun(session, round_id, org_id)


def test_the_counts_equal_a_recomputation_through_a_random_sequence_of_operations(
    engine: Engine, tmp_path: Path
) -> None:
    rng = random.Random(8)
    roster = _Roster(tmp_path, rng)
    with transaction(engine) as session:
        first = add_open_round(session, "计数2027年度").id
        second = add_open_round(session, "计数2028年度").id
    rounds = [first, second]
    _import(engine, roster, rounds)
    assert sum(n for n, _ in assert_counts_match(engine).values()) > 20
    steps = ["import"] * 6 + ["tap"] * 6 + ["submit"] * 25 + ["mass"] * 5 + ["delete"] * 3
    steps += ["move"] * 5 + ["reopen"] * 4 + ["rerun"] * 2
    rng.shuffle(steps)

    def reimport(engine: Engine, rng: random.Random, _round_id: int) -> None:
        for _ in range(rng.randint(0, 2)):
            roster.add()
        roster.move()
        _import(engine, roster, rounds)

    do = {"import": reimport, "tap": _tap, "submit": _submit, "mass": _mass_link}
    do |= {"delete": _delete_person, "move": _move_row, "reopen": _reopen, "rerun": _rerun}
    for step in steps:
        do[step](engine, rng, rng.choice(rounds))
        assert_counts_match(engine)
    with transaction(engine) as session:
        close_round(session, round_id=first, now=utcnow())
    final = assert_counts_match(engine)
    assert {a for _, _, a in final} >= {"members", "masses", "committee", "organizers"}
    assert any(s for _, s in final.values()), "some submissions were counted"


def test_deleting_a_round_takes_its_counts_with_it(engine: Engine) -> None:
    with transaction(engine) as session:
        org = add_org(session, "删轮村党支部", members=10)
        person = add_person(session, "删轮人", org, "member", phone="13900009999")
        round_ = Round(name="作废轮次", status="draft")
        session.add(round_)
        session.flush()
        assign(session, round_, person, org, "satisfaction", "members")
        round_id = round_.id
    assert assert_counts_match(engine) != {}
    with transaction(engine) as session:
        session.execute(delete(Round).where(Round.id == round_id))  # type: ignore[arg-type]
    assert assert_counts_match(engine) == {}


def test_coverage_reads_the_counts_not_the_assignments(engine: Engine) -> None:
    """A county tally reads one row per branch: no statement reads the assignments."""
    with transaction(engine) as session:
        ids = build_scored_township(session)
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    with Session(engine) as session:
        round_ = session.get(Round, ids["round"])
        assert round_ is not None
        event.listen(engine, "before_cursor_execute", record)
        try:
            everyone = assigned_coverage(session, round_=round_)
            graded = round_coverage(session, round_id=ids["round"])
        finally:
            event.remove(engine, "before_cursor_execute", record)
    assert everyone and graded
    assert [s for s in statements if re.search(r"(FROM|JOIN) assignment\b", s)] == []
    assert len(statements) == 2, "one statement each: the branches with their counts"


# --- Migration 0008 -------------------------------------------------------------------------


def _triggers(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        else:
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        return {name for (name,) in connection.exec_driver_sql(sql)}


def test_migration_0008_backfills_the_counts_and_downgrades_cleanly(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_scored_township(session)
    before = assert_counts_match(engine)
    assert before and _triggers(engine) >= {"assignment_count_insert", "assignment_count_delete"}
    with Session(engine) as session:
        coverage = round_coverage(session, round_id=ids["round"])
    command.downgrade(alembic_config(engine), "0007")  # the table and the triggers are gone
    with engine.connect() as connection:
        assert "assignment_count" not in inspect(connection).get_table_names()
    assert not {t for t in _triggers(engine) if t.startswith("assignment_count")}
    with transaction(engine) as session:  # written while no trigger kept count
        session.execute(
            update(Assignment)
            .where(Assignment.status == "pending")  # type: ignore[arg-type]
            .values(status="submitted")
        )
    upgrade(engine)
    after = assert_counts_match(engine)
    assert sum(s for _, s in after.values()) > sum(s for _, s in before.values())
    with Session(engine) as session:
        again = round_coverage(session, round_id=ids["round"])
    assert again.keys() == coverage.keys()


# --- Two submissions of one branch at once (PostgreSQL) --------------------------------------


@pytest.mark.parametrize("write", ["submit", "first", "last"])
def test_two_writes_of_one_branch_at_once_both_count(engine: Engine, write: str) -> None:
    """Two members of a branch submit, are first assigned, or their last two assignments
    are deleted, at the same moment: the second waits for the first, and both count."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writers already queue (BEGIN IMMEDIATE)")
    with transaction(engine) as session:
        org = add_org(session, "并发村党支部", members=10)
        round_ = add_open_round(session)
        people = [
            add_person(session, f"并发{n}", org, "member", phone=f"1390000800{n}") for n in (1, 2)
        ]
        ids = [
            assign(session, round_, person, org, "satisfaction", "members").id
            for person in people
            if write != "first"
        ]
        round_id, org_id, person_ids = round_.id, org.id, [p.id for p in people]

    def one(session: Session, n: int) -> None:
        if write == "first":
            session.add(
                Assignment(
                    round_id=round_id,  # type: ignore[arg-type]
                    person_id=person_ids[n],  # type: ignore[arg-type]
                    org_id=org_id,  # type: ignore[arg-type]
                    instrument_id="satisfaction",
                    audience="members",
                    status="submitted",
                )
            )
            session.flush()
        elif write == "last":
            session.execute(delete(Assignment).where(Assignment.id == ids[n]))  # type: ignore[arg-type]
        else:
            for item in SATISFACTION.items:
                if item.kind == "choice":
                    value = AnswerValue(choice=item.options[0].id)
                    save_answer(session, assignment_id=ids[n], item_id=item.id, value=value)
            submit(session, assignment_id=ids[n], now=utcnow())

    second: list[BaseException | None] = []

    def write_second() -> None:
        try:
            with transaction(engine) as other:
                one(other, 1)
            second.append(None)
        except BaseException as error:  # reported below, not swallowed
            second.append(error)

    with transaction(engine) as first:
        one(first, 0)
        racer = threading.Thread(target=write_second)
        racer.start()
        wait_until(lambda: second or waiting_on_a_lock(engine))  # queued behind the first
    racer.join(timeout=30)
    assert second == [None]
    with Session(engine) as session:
        both = {} if write == "last" else {(round_id, org_id, "members"): (2, 2)}
        assert kept(session) == both
