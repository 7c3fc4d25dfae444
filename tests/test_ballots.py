"""The sealed ballot box: what it folds when, and what sealing protects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import Engine, event, text
from sqlmodel import Session, select

from storage.ballots import fold_due
from storage.db import transaction
from storage.models import (
    Draft,
    Organization,
    Round,
    RoundPhase,
    SatisfactionBallots,
    SatisfactionBox,
    SatisfactionTally,
)
from storage.responses import save_answer, submit
from storage.rounds import close_round
from storage.sealing import derive_key, seal, unseal
from storage.types import utcnow
from surveys.instruments import AnswerValue
from tests.factories import add_open_round, add_org, add_person, assign

THRESHOLD = 5


@pytest.fixture
def box(engine: Engine) -> dict[str, int]:
    """A branch of an open round (satisfaction deadline in seven days) and twelve voters."""
    with transaction(engine) as session:
        org = add_org(session, "东村党支部", members=30, representatives=20)
        round_ = add_open_round(session)
        voters = [
            assign(
                session,
                round_,
                add_person(session, f"党员{n}", org, "member", phone=f"139000000{n:02d}"),
                org,
                "satisfaction",
                "members",
            ).id
            for n in range(12)
        ]
        return {"org": org.id, "round": round_.id, "voters": voters}  # type: ignore[dict-item]


def _vote(engine: Engine, assignment_id: int, option: str = "satisfied") -> None:
    with transaction(engine) as session:
        for item_id in ("q1", "q2", "q3", "q4", "q5"):
            save_answer(
                session,
                assignment_id=assignment_id,
                item_id=item_id,
                value=AnswerValue(choice=option),
            )
        for item_id, choice in (("q6", "good"), ("q7", "aware"), ("q8", "often")):
            save_answer(
                session,
                assignment_id=assignment_id,
                item_id=item_id,
                value=AnswerValue(choice=choice),
            )
        submit(session, assignment_id=assignment_id, now=utcnow())


def _counted(engine: Engine) -> tuple[int, int]:
    """(ballots counted, ballots waiting in the box)."""
    with Session(engine) as session:
        counted = session.exec(select(SatisfactionBallots.ballots)).first() or 0
        waiting = sum(len(b.ballots) for b in session.exec(select(SatisfactionBox)).all())
        return counted, waiting


def test_the_box_keeps_at_least_the_threshold_until_the_deadline(engine: Engine, box) -> None:
    seen = []
    for assignment_id in box["voters"]:
        _vote(engine, assignment_id)
        seen.append(_counted(engine))
    counted = [c for c, _ in seen]
    # Nothing before twice the threshold; then all but five at once; then nothing again.
    assert counted == [0] * 9 + [5, 5, 5]
    assert all(waiting >= THRESHOLD for c, waiting in seen if c)
    with Session(engine) as session:
        deadline = session.get(RoundPhase, (box["round"], "satisfaction")).deadline  # type: ignore[union-attr]
    assert fold_due(engine, now=deadline - timedelta(seconds=1)) == 0
    assert fold_due(engine, now=deadline) == 7  # the phase is over: the rest counts
    assert _counted(engine) == (12, 0)
    with Session(engine) as session:
        q1 = session.get(SatisfactionTally, (box["round"], box["org"], "q1", "satisfied"))
        assert q1 is not None and q1.count == 12


def test_a_fold_creates_every_counter_row_of_the_branch_in_the_forms_order(
    engine: Engine, box
) -> None:
    for assignment_id in box["voters"][:3]:
        _vote(engine, assignment_id, "dissatisfied")
    with transaction(engine) as session:
        close_round(session, round_id=box["round"], now=utcnow())
    with engine.connect() as connection:
        order = "ctid" if engine.dialect.name == "postgresql" else "rowid"
        rows = connection.execute(
            text(f"SELECT item_id, option_id, count FROM satisfaction_tally ORDER BY {order}")
        ).all()
    assert [(i, o) for i, o, _ in rows][:3] == [
        ("q1", "satisfied"),
        ("q1", "basically_satisfied"),
        ("q1", "dissatisfied"),
    ]
    assert {(i, o): n for i, o, n in rows}[("q1", "dissatisfied")] == 3
    assert _counted(engine) == (3, 0)


def test_a_branch_s_fold_makes_three_statements_while_it_holds_the_box(engine: Engine, box) -> None:
    """Voters of the branch wait while its fold holds the box (a meeting's end), so the fold
    reads the round, its phase and its form before, and adds to the counters in one
    statement: it then writes the counters, the branch's summary and the box, nothing else."""
    for assignment_id in box["voters"][:9]:  # under twice the threshold: nothing folded yet
        _vote(engine, assignment_id)
    with Session(engine) as session:
        deadline = session.get(RoundPhase, (box["round"], "satisfaction")).deadline  # type: ignore[union-attr]
    statements: list[str] = []

    def record(_conn, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        assert fold_due(engine, now=deadline, round_id=box["round"], org_id=box["org"]) == 9
    finally:
        event.remove(engine, "before_cursor_execute", record)
    box_read = next(
        n
        for n, sql in enumerate(statements)
        if sql.startswith("SELECT") and "FROM satisfaction_box" in sql
    )
    while_held = [sql.split(" (")[0].split(" SET")[0] for sql in statements[box_read + 1 :]]
    assert sorted(while_held) == [
        "INSERT INTO satisfaction_ballots",
        "INSERT INTO satisfaction_tally",
        "UPDATE satisfaction_box",
    ]
    assert _counted(engine) == (9, 0)
    with Session(engine) as session:
        q1 = session.get(SatisfactionTally, (box["round"], box["org"], "q1", "satisfied"))
        assert q1 is not None and q1.count == 9


def test_closing_the_round_purges_the_anonymous_drafts(engine: Engine, box) -> None:
    unsent = box["voters"][0]
    with transaction(engine) as session:
        save_answer(
            session, assignment_id=unsent, item_id="q1", value=AnswerValue(choice="dissatisfied")
        )
    with transaction(engine) as session:
        close_round(session, round_id=box["round"], now=utcnow())
    with Session(engine) as session:
        assert session.get(Draft, unsent) is None
        assert session.get(Round, box["round"]).status == "closed"  # type: ignore[union-attr]
        assert session.exec(select(SatisfactionBox)).all() == []
        assert session.get(Organization, box["org"]) is not None


def test_a_draft_is_ciphertext_at_rest_and_reads_back_in_clear(engine: Engine, box) -> None:
    mine = box["voters"][0]
    with transaction(engine) as session:
        save_answer(
            session, assignment_id=mine, item_id="q1", value=AnswerValue(choice="dissatisfied")
        )
    with engine.connect() as connection:
        raw = connection.execute(
            text("SELECT answers FROM draft WHERE assignment_id = :a"), {"a": mine}
        ).scalar_one()
    assert "dissatisfied" not in str(raw) and "v1:" in str(raw)
    with Session(engine) as session:
        assert session.get(Draft, mine).answers == {"q1": {"choice": "dissatisfied"}}  # type: ignore[union-attr]


def test_a_draft_saved_before_sealing_still_reads(engine: Engine, box) -> None:
    mine = box["voters"][0]
    with transaction(engine) as session:
        save_answer(
            session, assignment_id=mine, item_id="q1", value=AnswerValue(choice="satisfied")
        )
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE draft SET answers = :plain WHERE assignment_id = :a"),
            {"plain": '{"q1": {"choice": "dissatisfied"}}', "a": mine},
        )
    with Session(engine) as session:
        assert session.get(Draft, mine).answers == {"q1": {"choice": "dissatisfied"}}  # type: ignore[union-attr]


def test_sealing_needs_the_key_and_detects_tampering() -> None:
    key, other = derive_key("token one"), derive_key("token two")
    sealed = seal({"q1": "dissatisfied"}, key)
    assert "dissatisfied" not in sealed
    assert unseal(sealed, key) == {"q1": "dissatisfied"}
    assert seal({"q1": "dissatisfied"}, key) != sealed  # a fresh nonce every time
    with pytest.raises(InvalidTag):
        unseal(sealed, other)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidTag):
        unseal(tampered, key)


def test_ballots_of_two_branches_in_one_transaction_are_all_folded(engine: Engine, box) -> None:
    with transaction(engine) as session:
        west = add_org(session, "西村党支部", members=30, representatives=20)
        round_ = session.get(Round, box["round"])
        other = assign(
            session,
            round_,  # type: ignore[arg-type]
            add_person(session, "西村党员", west, "member", phone="13900000099"),
            west,
            "satisfaction",
            "members",
        ).id
    with Session(engine) as session:
        deadline = session.get(RoundPhase, (box["round"], "satisfaction")).deadline  # type: ignore[union-attr]
    with transaction(engine) as session:
        for assignment_id in (box["voters"][0], other):
            for item_id in ("q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"):
                choice = "good" if item_id == "q6" else "aware" if item_id == "q7" else "often"
                choice = "satisfied" if item_id <= "q5" else choice
                save_answer(
                    session,
                    assignment_id=assignment_id,
                    item_id=item_id,
                    value=AnswerValue(choice=choice),
                )
            submit(session, assignment_id=assignment_id, now=deadline)
    with Session(engine) as session:
        counted = dict(
            session.exec(select(SatisfactionBallots.org_id, SatisfactionBallots.ballots)).all()
        )
    assert counted == {box["org"]: 1, west.id: 1}
