"""The per-branch summaries (issue 12) always equal a recomputation from the raw rows.

The satisfaction sums on ``satisfaction_ballots`` are held to the SQL over the counters
(storage.tally_reads.counter_sums), the named totals in ``response_summary`` to the
responses, after every step of a random sequence: ballots folded in steps, named forms
submitted, a 补测 ordered, the deadline passing, the round closing. A one-branch tally
without proposals reads that branch's rows only, and says what the full tally says of it.
"""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from alembic import command
from sqlalchemy import Engine, inspect
from sqlmodel import Session, select

from storage import summary
from storage import tally_reads as reads
from storage.ballots import fold_due
from storage.db import alembic_config, transaction, upgrade
from storage.models import Organization, Round, RoundPhase, SatisfactionBallots
from storage.responses import save_answer, submit
from storage.rounds import close_round
from storage.tallies import round_tally
from storage.types import utcnow
from surveys.instruments import AnswerValue, get_instrument
from tests.factories import (
    add_open_round,
    add_org,
    add_person,
    assign,
    build_graded_township,
    build_scored_township,
    new_phone,
    points_for_total,
    rerun,
    submit_inspection,
    submit_points,
)
from tests.test_tallies import counting_queries

D = Decimal
FORM = get_instrument("satisfaction")


def _vote(engine: Engine, rng: random.Random, round_id: int, org_id: int) -> None:
    """One member answers every choice question at random and submits (a fold may follow)."""
    with transaction(engine) as session:
        round_, org = session.get(Round, round_id), session.get(Organization, org_id)
        person = add_person(session, "投票人", org, "member", phone=new_phone())
        assignment = assign(session, round_, person, org, "satisfaction", "members")
        for item in FORM.items:
            if item.kind == "choice":
                choice = rng.choice(item.options).id
                value = AnswerValue(choice=choice)
                save_answer(session, assignment_id=assignment.id, item_id=item.id, value=value)
        submit(session, assignment_id=assignment.id, now=utcnow())  # type: ignore[arg-type]


def _score(engine: Engine, rng: random.Random, round_id: int, org_id: int, kind: str) -> None:
    """A self-evaluation with a random total, or an inspection with random deductions."""
    with transaction(engine) as session:
        round_, org = session.get(Round, round_id), session.get(Organization, org_id)
        person = add_person(session, "评分人", org, "committee", phone=new_phone())
        if kind == "self":
            total = D(rng.randint(40, 100)) - D(rng.choice(["0", "0.5"]))
            points = points_for_total("self_evaluation", total)
            submit_points(session, round_, org, person, "self_evaluation", points, "committee")
        else:
            sections = [s.id for s in get_instrument("inspection_village").sections]
            deducted = rng.sample(sections, rng.randint(0, 2))
            submit_inspection(session, round_, org, person, deduct_sections=deducted)


def assert_summaries_match(engine: Engine, round_id: int) -> None:
    """The kept summaries equal the recomputation from counters and responses."""
    with Session(engine) as session:
        ballots, kept = reads.summaries(session, round_id, None)
        counted = reads.counter_sums(
            session, round_id, reads.satisfaction_instrument(session, round_id)
        )
        totals = reads.response_totals(session, round_id, None)
        responses = summary.counted_responses(session, round_id)
    assert set(kept) == set(counted)
    for org_id, sums in counted.items():
        mine = kept[org_id]
        assert (mine.weighted is not None) and reads.exact(mine.weighted) == reads.exact(
            sums.weighted
        )
        assert replace(mine, weighted=0) == replace(sums, weighted=0), org_id
        assert mine.score == sums.score and mine.rates == sums.rates
    assert all(n >= 0 for n in ballots.values())
    assert {key: (reads.exact(t.total), t.count) for key, t in totals.items()} == {
        key: (reads.exact(total), count) for key, (total, count) in responses.items()
    }


def test_the_summaries_equal_a_recomputation_through_a_random_round(engine: Engine) -> None:
    rng = random.Random(12)
    with transaction(engine) as session:
        town = add_org(session, "随机镇党委", "committee")
        branches = [
            add_org(
                session, f"随机{n}村党支部", members=40, representatives=10, parent_id=town.id
            ).id
            for n in range(3)
        ]
        round_id = add_open_round(session).id
    steps = ["vote"] * 30 + ["self"] * 5 + ["inspect"] * 4 + ["rerun"]
    rng.shuffle(steps)
    for step in steps:
        org_id = rng.choice(branches)
        if step == "vote":
            _vote(engine, rng, round_id, org_id)
        elif step == "rerun":
            with transaction(engine) as session:
                rerun(session, round_id, org_id)
        else:
            _score(engine, rng, round_id, org_id, step)
        assert_summaries_match(engine, round_id)
    with Session(engine) as session:
        folded = sum(session.exec(select(SatisfactionBallots.ballots)).all())
    assert 0 < folded < 30, "some ballots still wait in the boxes: the folds came in steps"
    # The satisfaction deadline passes: the rest is folded; then the round closes.
    with transaction(engine) as session:
        phase = session.get(RoundPhase, (round_id, "satisfaction"))
        assert phase is not None
        phase.deadline = utcnow() - timedelta(minutes=1)
    fold_due(engine, now=utcnow(), round_id=round_id)
    assert_summaries_match(engine, round_id)
    with transaction(engine) as session:
        close_round(session, round_id=round_id, now=utcnow())
    fold_due(engine, now=utcnow(), round_id=round_id)
    assert_summaries_match(engine, round_id)
    with Session(engine) as session:
        assert sum(session.exec(select(SatisfactionBallots.ballots)).all()) == 30


def test_rebuild_gives_back_what_the_folds_and_submissions_kept(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_scored_township(session)
    with Session(engine) as session:
        before = (
            reads.summaries(session, ids["round"], None),
            reads.response_totals(session, ids["round"], None),
        )
    with transaction(engine) as session:
        summary.rebuild(session, round_id=ids["round"])
    with Session(engine) as session:
        after = (
            reads.summaries(session, ids["round"], None),
            reads.response_totals(session, ids["round"], None),
        )
    assert after[0][0] == before[0][0]
    assert {k: v.score for k, v in after[0][1].items()} == {
        k: v.score for k, v in before[0][1].items()
    }
    assert {k: (reads.exact(v.total), v.count) for k, v in after[1].items()} == {
        k: (reads.exact(v.total), v.count) for k, v in before[1].items()
    }


# --- The one-branch tally ----------------------------------------------------------------------

_BRANCH_TABLES = (
    "assignment",
    "satisfaction_ballots",
    "response_summary",
    "response",
    "veto",
    "grade_decision",
    "satisfaction_tally",
)


def _reads_every_branch(statements: list[str]) -> list[str]:
    """Statements reading a per-branch table with no filter on the branch."""
    found = []
    for statement in statements:
        tables = re.findall(r"FROM (\w+)", statement) + re.findall(r"JOIN (\w+)", statement)
        if any(t in _BRANCH_TABLES for t in tables) and not re.search(
            r"org_id IN|org_id =", statement
        ):
            found.append(statement)
    return found


def test_a_one_branch_tally_without_proposals_reads_only_that_branch(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, org_ids = build_graded_township(session, [95, 90, 80, 70, 60])
    with Session(engine) as session, counting_queries(engine) as statements:
        alone = round_tally(session, round_id=round_id, org_ids=[org_ids[2]], proposals=False)
    assert _reads_every_branch(statements) == []
    with Session(engine) as session, counting_queries(engine) as statements:
        round_tally(session, round_id=round_id, org_ids=[org_ids[2]])
    assert _reads_every_branch(statements), "the pool's proposal does read every branch"
    with Session(engine) as session:
        full = round_tally(session, round_id=round_id, now=utcnow())
        alone = round_tally(
            session, round_id=round_id, org_ids=[org_ids[2]], proposals=False, now=utcnow()
        )
    mine, theirs = alone.branch(org_ids[2]), full.branch(org_ids[2])
    assert mine is not None and theirs is not None
    assert mine.proposal is None and alone.pools == {}
    assert theirs.proposal is not None  # the organizer's view has one
    assert mine.status == theirs.status and mine.pool == theirs.pool
    for name in ("coverage", "ballots", "rates", "satisfaction_score", "self_evaluation"):
        assert getattr(mine, name) == getattr(theirs, name), name
    assert (mine.inspection, mine.superior, mine.composite) == (
        theirs.inspection,
        theirs.superior,
        theirs.composite,
    )
    assert mine.self_evaluation_by_item == theirs.self_evaluation_by_item != {}


# --- Migration 0007 -------------------------------------------------------------------------


def test_migration_0007_backfills_the_summaries_from_the_rows_there(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_scored_township(session)
    with Session(engine) as session:
        kept = round_tally(session, round_id=ids["round"], distribution=True)
    command.downgrade(alembic_config(engine), "0006")  # the summaries are gone
    with engine.connect() as connection:
        assert "response_summary" not in inspect(connection).get_table_names()
    upgrade(engine)
    assert_summaries_match(engine, ids["round"])
    with Session(engine) as session:
        again = round_tally(session, round_id=ids["round"], distribution=True)
    assert again == kept
