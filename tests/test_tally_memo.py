"""A tally that reuses the last tally's arithmetic (storage.tally_memo) says what a fresh one says.

The memo keeps each branch's results beside the rows they came from and each pool's
proposal beside its inputs; nothing invalidates it by hand. So the adversary here is a
change the memo might miss: through a random round (ballots, named scores, vetoes, the
committee's decisions, a waiver, a 补测, new weights and threshold, the deadline passing,
a veto previewed), every kind of tally taken after each step with the memo warm is held
to the same tally taken with the memo emptied. Then: the memo is really used (an
unchanged branch's result is the very same object), and it stays bounded.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session

from storage import tally_memo
from storage.db import transaction
from storage.grading import decide_grade, record_veto
from storage.models import Organization, Round, RoundPhase
from storage.remedies import waive_participation
from storage.tallies import RoundTally, round_tally
from storage.types import utcnow
from tests.factories import (
    add_person,
    build_graded_township,
    cast_ballot,
    new_phone,
    points_for_total,
    rerun,
    submit_inspection,
    submit_points,
)

D = Decimal
Tally = Callable[[Session], RoundTally]


def _kinds(round_id: int, one: int, now: datetime) -> dict[str, Tally]:
    """Every way the product asks for a tally, judged at ``now``."""
    return {
        "full": lambda s: round_tally(s, round_id=round_id, details=False, now=now),
        "full_details": lambda s: round_tally(s, round_id=round_id, now=now),
        "export": lambda s: round_tally(s, round_id=round_id, distribution=True, now=now),
        "one_pool": lambda s: round_tally(s, round_id=round_id, org_ids=[one], now=now),
        "one": lambda s: round_tally(s, round_id=round_id, org_ids=[one], proposals=False, now=now),
        "preview_veto": lambda s: round_tally(
            s, round_id=round_id, now=now, extra_vetoes={one: ["disciplinary_violation"]}
        ),
    }


def assert_memo_agrees(engine: Engine, round_id: int, one: int) -> None:
    """Each kind of tally, memo warm, equals the same with the memo empty, now and after
    the deadline (the memo knows nothing of ``now``: a deadline passes between two tallies).
    """
    for now in (utcnow(), utcnow() + timedelta(days=30), utcnow()):
        for kind, tally in _kinds(round_id, one, now).items():
            with Session(engine) as session:
                warm = tally(session)
            with tally_memo.aside(), Session(engine) as session:
                fresh = tally(session)
            assert warm == fresh, (kind, now)


def _step(engine: Engine, rng: random.Random, step: str, round_id: int, org_id: int) -> None:
    with transaction(engine) as session:
        round_, org = session.get(Round, round_id), session.get(Organization, org_id)
        assert round_ is not None and org is not None
        now = utcnow()
        if step == "vote":
            choice = rng.choice(["satisfied", "basically_satisfied", "dissatisfied"])
            cast_ballot(session, round_, org, choice, audience=rng.choice(["members", "masses"]))
        elif step == "self":
            person = add_person(session, "评分人", org, "committee", phone=new_phone())
            points = points_for_total("self_evaluation", D(rng.randint(50, 100)))
            submit_points(session, round_, org, person, "self_evaluation", points, "committee")
        elif step == "inspect":
            person = add_person(session, "检查人", org, "inspector", phone=new_phone())
            submit_inspection(session, round_, org, person, deduct_sections=["basics"])
        elif step == "veto":
            record_veto(
                session,
                round_id=round_id,
                org_id=org_id,
                condition=rng.choice(["违纪违法党员", "重大安全事故"]),
                note=None,
                person_id=None,
                now=now,
            )
        elif step == "decide":
            decide_grade(session, round_id=round_id, org_id=org_id, person_id=None, now=now)
        elif step == "waive":
            waive_participation(
                session, round_id=round_id, org_id=org_id, reason="特殊", person_id=None, now=now
            )
        elif step == "rerun":
            rerun(session, round_id, org_id, days=40)
        elif step == "options":
            weights = {"self_evaluation": "0.2", "satisfaction": "0.5", "inspection": "0.3"}
            round_.options = {"weights": weights, "small_group_threshold": 3, "good_share": "0.3"}
        elif step == "deadline":
            phase = session.get(RoundPhase, (round_id, "satisfaction"))
            assert phase is not None
            phase.deadline = now - timedelta(minutes=1)


def test_a_warm_tally_equals_a_fresh_one_through_a_random_round(engine: Engine) -> None:
    rng = random.Random(2027)
    with transaction(engine) as session:
        round_id, branches = build_graded_township(session, [95, 88, 76, 64, 91, 59])
        # Two branches far below their participation target: 参与面未达标 once the deadline
        # passes, unless waived or re-run.
        for org_id in branches[:2]:
            org = session.get(Organization, org_id)
            assert org is not None
            org.members, org.representatives = 30, 12
    steps = ["vote"] * 8 + ["self"] * 2 + ["inspect"] * 2 + ["veto", "decide", "waive"]
    steps += ["rerun", "options"]
    rng.shuffle(steps)
    steps.append("deadline")
    tally_memo.forget()
    for step in steps:
        org_id = rng.choice(branches)
        try:
            _step(engine, rng, step, round_id, org_id)
        except Exception as error:  # a refused step (a veto twice, no proposal yet) is a step
            assert type(error).__name__ in {"GradingError", "RemedyError"}, error
        assert_memo_agrees(engine, round_id, rng.choice(branches))


def test_an_unchanged_branch_is_not_recomputed_and_a_changed_one_is(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, (first, second, *_) = build_graded_township(session, [95, 88, 76, 64, 91])
    tally_memo.forget()
    with Session(engine) as session:
        before = round_tally(session, round_id=round_id, details=False)
        again = round_tally(session, round_id=round_id, details=False)
    assert all(a is b for a, b in zip(before.branches, again.branches, strict=True))
    with transaction(engine) as session:  # one more 满意 ballot for the first branch only
        round_, org = session.get(Round, round_id), session.get(Organization, first)
        assert round_ is not None and org is not None
        cast_ballot(session, round_, org, "satisfied")
    with Session(engine) as session:
        after = round_tally(session, round_id=round_id, details=False)
    changed = after.branch(first)
    assert changed is not None and changed is not before.branch(first)
    assert changed.ballots == before.branch(first).ballots + 1  # type: ignore[union-attr]
    unchanged = after.branch(second)
    assert unchanged is not None and unchanged is before.branch(second)


def test_the_memo_keeps_a_few_tallies_only(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, _ = build_graded_township(session, [95, 88])
    tally_memo.forget()
    for threshold in range(tally_memo.KEPT_TALLIES + 3):  # new options: a new memo each
        with transaction(engine) as writer:
            round_ = writer.get(Round, round_id)
            assert round_ is not None
            round_.options = {"small_group_threshold": threshold + 1}
        with Session(engine) as session:
            round_tally(session, round_id=round_id, details=False)
    assert tally_memo.kept() == tally_memo.KEPT_TALLIES
