"""Live tallies: hand-counted numbers on a small township, privacy and quota proposals."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import Engine, event
from sqlmodel import Session

from storage.db import transaction
from storage.models import Organization, Round, Veto
from storage.rounds import create_round
from storage.tallies import round_tally
from storage.types import utcnow
from surveys.categories import Audience, Phase
from surveys.grading import Basis, display_score
from surveys.instruments import get_instrument
from surveys.rules import Grade, ProposalReason
from surveys.scoring import summarize_satisfaction
from tests.factories import (
    add_open_round,
    add_org,
    add_person,
    build_graded_township,
    build_scored_township,
    cast_ballot,
    new_phone,
    points_for_total,
    submit_inspection,
    submit_points,
)

D = Decimal


# --- Tallies against hand-counted numbers ---------------------------------------------------


def test_a_branch_tally_matches_the_hand_count(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_scored_township(session)
    with Session(engine) as session:
        tally = round_tally(session, round_id=ids["round"], distribution=True)
        plain = round_tally(session, round_id=ids["round"]).branch(ids["east"])
    assert plain is not None and plain.distribution is None, "counts per option only on request"
    east = tally.branch(ids["east"])
    assert east is not None and not east.small_group
    assert east.ballots == 6
    # Q1–Q5: 20 满意 + 5 基本满意 + 5 不满意 = 30 answers; 25 positive.
    assert east.rates is not None
    assert east.rates.satisfaction == D("0.8333")
    assert east.rates.awareness == D("0.8333")  # 3 了解 + 2 部分了解 of 6
    assert east.rates.participation == D("0.5000")  # 2 经常 + 1 偶尔 of 6
    # (20×100 + 5×60 + 5×0) / 30 = 76.666… → 76.67
    assert east.satisfaction_score is not None
    assert display_score(east.satisfaction_score) == D("76.67")  # unrounded inside
    assert east.distribution is not None and east.distribution["q1"]["satisfied"] == 4
    assert east.distribution["q6"] == {"good": 6, "fairly_good": 0, "average": 0, "poor": 0}
    assert east.self_evaluation == D("87.50")  # (90 + 85) / 2
    assert east.self_evaluation_by_item["leader"] == D("17.50")
    assert east.self_evaluation_by_item["mass_evaluation"] == D("13.50")
    assert east.self_evaluators == 2
    # One inspector took all 25 points of 党建基础, the other nothing: (75 + 100) / 2.
    assert east.inspection == D("87.50")
    assert east.inspection_by_section["basics"] == D("12.50")
    assert east.inspection_by_section["organization"] == D("30.00")
    assert east.inspectors == 2
    # 0.3 × 87.50 + 0.4 × 76.666… + 0.3 × 87.50 = 83.1666… → shown 83.17
    assert east.composite.score is not None
    assert display_score(east.composite.score) == D("83.17")
    assert east.composite.missing == ()
    # The round has superior scoring: its pool ranks on the committee's scores, none yet.
    assert east.grading_score is None and east.proposal is None
    assert east.superior is None
    members = east.coverage[Audience.MEMBERS]
    assert (members.respondents, members.required) == (5, 8)


def test_a_small_group_shows_participation_only_and_its_weights_are_renormalized(
    engine: Engine,
) -> None:
    with transaction(engine) as session:
        ids = build_scored_township(session)
    with Session(engine) as session:
        west = round_tally(session, round_id=ids["round"], org_ids=[ids["west"]]).branches[0]
    assert west.ballots == 3 and west.small_group
    assert west.rates is None and west.satisfaction_score is None and west.distribution is None
    assert west.coverage[Audience.MEMBERS].respondents == 3
    # The three ballots still count (docs/rules.md §7.3): the composite is made of the
    # self-evaluation and the satisfaction score, but its number is hidden, since it would
    # give the satisfaction score back (§7.2).
    assert west.composite.score is None and west.grading_score is None
    assert set(west.composite.weights_used) == {"self_evaluation", "satisfaction"}
    assert west.composite.missing == ("inspection",)


def test_round_weights_and_threshold_come_from_the_round_options(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_scored_township(session)
        round_ = session.get(Round, ids["round"])
        assert round_ is not None
        round_.options = {
            "weights": {"self_evaluation": "0.5", "satisfaction": "0.5", "inspection": "0"},
            "small_group_threshold": 3,
        }
    with Session(engine) as session:
        tally = round_tally(session, round_id=ids["round"])
    east, west = tally.branch(ids["east"]), tally.branch(ids["west"])
    assert east is not None and west is not None
    # (87.50 + 76.666…) / 2 = 82.0833…: unrounded parts (docs/rules.md §5.1), shown 82.08.
    assert east.composite.score is not None
    assert display_score(east.composite.score) == D("82.08")
    assert not west.small_group and west.satisfaction_score == D("100.00")
    assert tally.threshold == 3


def test_a_branch_without_answers_has_no_score_and_sorts_last(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_scored_township(session)
    with Session(engine) as session:
        tally = round_tally(session, round_id=ids["round"])
    # Nobody is ranked yet (no committee score): by name, never by a hidden number.
    assert [b.org_id for b in tally.branches] == [ids["east"], ids["south"], ids["west"]]
    south = tally.branch(ids["south"])
    assert south is not None
    assert south.composite.score is None and south.grading_score is None
    assert south.proposal is None
    assert tally.graded == 0


def test_superior_scoring_grades_the_branch_once_the_committee_has_scored(
    engine: Engine,
) -> None:
    with transaction(engine) as session:
        ids = build_scored_township(session)
        round_ = session.get(Round, ids["round"])
        town = session.get(Organization, ids["town"])
        east = session.get(Organization, ids["east"])
        assert round_ and town and east
        for total in (D(92), D(89)):
            organizer = add_person(
                session, f"组织干事{total}", town, "organizer", phone=new_phone()
            )
            points = points_for_total("superior_scoring", total)
            submit_points(
                session, round_, east, organizer, "superior_scoring", points, "organizers"
            )
    with Session(engine) as session:
        east_tally = round_tally(session, round_id=ids["round"]).branch(ids["east"])
    assert east_tally is not None
    assert east_tally.superior == D("90.50") and east_tally.superior_scorers == 2
    assert east_tally.grading_score == D("90.50")
    assert east_tally.composite.score is not None, "the composite is still shown"
    assert display_score(east_tally.composite.score) == D("83.17")


def test_the_sql_sums_agree_with_the_survey_scoring_on_random_ballots(engine: Engine) -> None:
    rng = random.Random(5)
    options = ("satisfied", "basically_satisfied", "dissatisfied")
    with transaction(engine) as session:
        ids = build_scored_township(session)
        round_ = session.get(Round, ids["round"])
        south = session.get(Organization, ids["south"])
        assert round_ and south
        for _ in range(23):
            cast_ballot(
                session,
                round_,
                south,
                rng.choice(options),
                rng.choice(("aware", "partly_aware", "unaware")),
                rng.choice(("often", "sometimes", "never")),
            )
    with Session(engine) as session:
        branch = round_tally(
            session, round_id=ids["round"], org_ids=[ids["south"]], distribution=True
        ).branches[0]
    assert branch.distribution is not None
    tallies = {
        (item, option): count
        for item, counts in branch.distribution.items()
        for option, count in counts.items()
    }
    expected = summarize_satisfaction(get_instrument("satisfaction"), 23, tallies)
    assert branch.rates == expected.rates
    assert branch.satisfaction_score == expected.score  # both unrounded (docs/rules.md §5.1)


# --- Quota proposals over the whole round ---------------------------------------------------


def test_quotas_cap_good_flag_ties_apply_vetoes_and_fill_poor(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, ids = build_graded_township(session, [95, 93, 91, 91, 85, 80, 75, 70, 65, 62])
        session.add(Veto(round_id=round_id, org_id=ids[0], condition="违纪违法党员"))
    with Session(engine) as session:
        tally = round_tally(session, round_id=round_id)
    # 10 branches: at most ⌊2⌋ 好, at least ⌈1⌉ 较差.
    assert (tally.max_good, tally.min_poor) == (2, 1)
    by_id = {b.org_id: b for b in tally.branches}
    vetoed = by_id[ids[0]]
    assert vetoed.vetoed and vetoed.vetoes == ["违纪违法党员"]
    assert vetoed.proposal and vetoed.proposal.grade is Grade.FAIRLY_GOOD
    assert vetoed.proposal.reason is ProposalReason.VETO
    assert by_id[ids[1]].proposal and by_id[ids[1]].proposal.grade is Grade.GOOD
    # Two branches tie on 91 for the last 好 place: one keeps it, both are flagged.
    tied = [by_id[ids[2]].proposal, by_id[ids[3]].proposal]
    assert all(p is not None and p.tie_at_edge for p in tied)
    assert sorted(p.grade for p in tied if p) == sorted([Grade.GOOD, Grade.FAIRLY_GOOD])
    lowest = by_id[ids[9]].proposal
    assert lowest and lowest.grade is Grade.POOR and lowest.reason is ProposalReason.POOR_QUOTA


def test_a_filtered_tally_keeps_the_quota_of_the_whole_round(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, ids = build_graded_township(session, [95, 93, 91, 85, 80, 75, 70, 65, 62, 61])
    with Session(engine) as session:
        one = round_tally(session, round_id=round_id, org_ids=[ids[2]])
    assert [b.org_id for b in one.branches] == [ids[2]]
    assert (one.max_good, one.min_poor, one.graded) == (2, 1, 10)
    proposal = one.branches[0].proposal
    # 91 ranks third of ten: above 90, but the two 好 places are taken.
    assert proposal and proposal.rank == 3 and proposal.grade is Grade.FAIRLY_GOOD
    assert proposal.reason is ProposalReason.GOOD_QUOTA_EXCEEDED


# --- A fixed number of queries ---------------------------------------------------------------


@contextmanager
def counting_queries(engine: Engine) -> Iterator[list[str]]:
    """Record every SQL statement run on the engine."""
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_the_number_of_queries_does_not_grow_with_the_branches(engine: Engine) -> None:
    with transaction(engine) as session:
        small_round, _ = build_graded_township(session, [90, 80])
    with transaction(engine) as session:
        town = add_org(session, "大镇党委", "committee")
        organizer = add_person(session, "大镇干事", town, "organizer", phone=new_phone())
        big = add_open_round(session, "2029年度")
        for index in range(25):
            branch = add_org(session, f"大镇第{index}村党支部", parent_id=town.id)
            cast_ballot(session, big, branch, "satisfied")
            submit_points(
                session,
                big,
                branch,
                organizer,
                "superior_scoring",
                points_for_total("superior_scoring", D(60 + index)),
                "organizers",
            )
        big_round = big.id
    counts = []
    for round_id in (small_round, big_round):
        with Session(engine) as session, counting_queries(engine) as statements:
            round_tally(session, round_id=round_id)
        counts.append(len(statements))
    assert counts[0] == counts[1]


# --- Privacy hides a number, never changes a grade (docs/rules.md §7.3) ---------------------


def _composite_round(session: Session, name: str) -> Round:
    """A round without the committee's scoring: ranked on composites (docs/rules.md §5.5)."""
    now = utcnow()
    round_ = create_round(
        session,
        name=name,
        deadlines={
            phase: now + timedelta(days=7)
            for phase in (Phase.SELF_EVALUATION, Phase.SATISFACTION, Phase.INSPECTION)
        },
        now=now,
    )
    return round_


def test_three_dissatisfied_ballots_still_count_and_low_turnout_cannot_raise_the_grade(
    engine: Engine,
) -> None:
    with transaction(engine) as session:
        town = add_org(session, "某镇党委", "committee")
        inspector = add_person(session, "周检", town, "inspector", phone=new_phone())
        round_ = _composite_round(session, "2029年度")
        branch = add_org(session, "少票村党支部", parent_id=town.id, members=3)
        for _ in range(3):
            cast_ballot(session, round_, branch, "dissatisfied")
        secretary = add_person(session, "少票书记", branch, "committee", phone=new_phone())
        points = points_for_total("self_evaluation", D(80))
        submit_points(session, round_, branch, secretary, "self_evaluation", points, "committee")
        submit_inspection(session, round_, branch, inspector)
        round_id, org_id = round_.id, branch.id
    with Session(engine) as session:
        tally = round_tally(session, round_id=round_id)
    small = tally.branch(org_id)  # type: ignore[arg-type]
    assert small is not None and small.small_group and small.basis is Basis.COMPOSITE
    # Hidden: the satisfaction score, the 三率 and the composite number (it would give the
    # satisfaction score back); shown: the grade.
    assert small.satisfaction_score is None and small.rates is None
    assert small.composite.score is None and small.grading_score is None
    assert small.proposal is not None
    # Counted: 0.3·80 + 0.4·0 + 0.3·100 = 54 → 较差. Leaving the ballots out would give
    # (0.3·80 + 0.3·100) / 0.6 = 90 → 好.
    assert small.proposal.score == D(54)
    assert small.proposal.by_threshold is Grade.POOR
