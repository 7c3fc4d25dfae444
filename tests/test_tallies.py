"""Live tallies: hand-counted numbers on a small township, privacy and quota proposals."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, event
from sqlmodel import Session

from storage.db import transaction
from storage.models import Organization, Person, Round, Veto
from storage.responses import save_answer, submit
from storage.tallies import round_tally
from storage.types import utcnow
from surveys.categories import Audience
from surveys.instruments import AnswerValue, get_instrument
from surveys.rules import Grade, ProposalReason
from surveys.scoring import summarize_satisfaction
from tests.factories import add_open_round, add_org, add_person, assign

D = Decimal
PHASE_OVER = datetime(2999, 1, 1, tzinfo=UTC)  # after every deadline (storage.ballots)
Q1_5 = ("q1", "q2", "q3", "q4", "q5")
_serial = iter(range(10**6))


# --- Builders shared by the report tests ----------------------------------------------------


def _phone() -> str:
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
    person = add_person(session, f"投票人{next(_serial)}", org, "member", phone=_phone())
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


def build_township(session: Session) -> dict[str, int]:
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
    a = add_person(session, "张书记", east, "committee", "secretary", phone=_phone())
    b = add_person(session, "李委员", east, "committee", phone=_phone())
    submit_points(session, round_, east, a, "self_evaluation", SELF_A, "committee")
    submit_points(session, round_, east, b, "self_evaluation", SELF_B, "committee")
    inspector_1 = add_person(session, "王组长", town, "inspector", phone=_phone())
    inspector_2 = add_person(session, "赵干事", town, "inspector", phone=_phone())
    submit_inspection(session, round_, east, inspector_1, deduct_sections=["basics"])
    submit_inspection(session, round_, east, inspector_2)
    # 西村: three ballots only — a small group.
    for _ in range(3):
        cast_ballot(session, round_, west, "satisfied")
    c = add_person(session, "钱书记", west, "committee", "secretary", phone=_phone())
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
    d = add_person(session, "孙党员", south, "member", phone=_phone())
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


# --- Tallies against hand-counted numbers ---------------------------------------------------


def test_a_branch_tally_matches_the_hand_count(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
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
    assert east.satisfaction_score == D("76.67")
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
    # 0.3 × 87.50 + 0.4 × 76.67 + 0.3 × 87.50 = 83.168 → 83.17
    assert east.composite.score == D("83.17")
    assert east.composite.missing == ()
    assert east.grading_score == D("83.17")
    assert east.superior is None
    members = east.coverage[Audience.MEMBERS]
    assert (members.respondents, members.required) == (5, 8)


def test_a_small_group_shows_participation_only_and_its_weights_are_renormalized(
    engine: Engine,
) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    with Session(engine) as session:
        west = round_tally(session, round_id=ids["round"], org_ids=[ids["west"]]).branches[0]
    assert west.ballots == 3 and west.small_group
    assert west.rates is None and west.satisfaction_score is None and west.distribution is None
    assert west.coverage[Audience.MEMBERS].respondents == 3
    # Only the self-evaluation is left: its weight 0.3 becomes 1, so the composite is 70.
    assert west.composite.score == D("70.00")
    assert west.composite.weights_used == {"self_evaluation": D(1)}
    assert west.composite.missing == ("satisfaction", "inspection")


def test_round_weights_and_threshold_come_from_the_round_options(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
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
    assert east.composite.score == D("82.09")  # (87.50 + 76.67) / 2 = 82.085 → 82.09
    assert not west.small_group and west.satisfaction_score == D("100.00")
    assert tally.threshold == 3


def test_a_branch_without_answers_has_no_score_and_sorts_last(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    with Session(engine) as session:
        tally = round_tally(session, round_id=ids["round"])
    assert [b.org_id for b in tally.branches] == [ids["east"], ids["west"], ids["south"]]
    south = tally.branches[-1]
    assert south.composite.score is None and south.grading_score is None
    assert south.proposal is None
    assert tally.graded == 2


def test_superior_scoring_grades_the_branch_once_the_committee_has_scored(
    engine: Engine,
) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
        round_ = session.get(Round, ids["round"])
        town = session.get(Organization, ids["town"])
        east = session.get(Organization, ids["east"])
        assert round_ and town and east
        for total in (D(92), D(89)):
            organizer = add_person(session, f"组织干事{total}", town, "organizer", phone=_phone())
            points = points_for_total("superior_scoring", total)
            submit_points(
                session, round_, east, organizer, "superior_scoring", points, "organizers"
            )
    with Session(engine) as session:
        east_tally = round_tally(session, round_id=ids["round"]).branch(ids["east"])
    assert east_tally is not None
    assert east_tally.superior == D("90.50") and east_tally.superior_scorers == 2
    assert east_tally.grading_score == D("90.50")
    assert east_tally.composite.score == D("83.17"), "the composite is still shown"


def test_the_sql_sums_agree_with_the_survey_scoring_on_random_ballots(engine: Engine) -> None:
    rng = random.Random(5)
    options = ("satisfied", "basically_satisfied", "dissatisfied")
    with transaction(engine) as session:
        ids = build_township(session)
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
    assert branch.satisfaction_score == expected.score


# --- Quota proposals over the whole round ---------------------------------------------------


def _graded_township(session: Session, scores: Sequence[int]) -> tuple[int, list[int]]:
    """Branches scored by the committee with these superior totals, in order."""
    town = add_org(session, "某镇党委", "committee")
    organizer = add_person(session, "陈华", town, "organizer", phone=_phone())
    round_ = add_open_round(session, "2028年度")
    org_ids = []
    for index, score in enumerate(scores):
        branch = add_org(session, f"第{index + 1}村党支部", parent_id=town.id)
        points = points_for_total("superior_scoring", D(score))
        submit_points(session, round_, branch, organizer, "superior_scoring", points, "organizers")
        org_ids.append(branch.id)
    return round_.id, org_ids  # type: ignore[return-value]


def test_quotas_cap_good_flag_ties_apply_vetoes_and_fill_poor(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, ids = _graded_township(session, [95, 93, 91, 91, 85, 80, 75, 70, 65, 62])
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
        round_id, ids = _graded_township(session, [95, 93, 91, 85, 80, 75, 70, 65, 62, 61])
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
        small_round, _ = _graded_township(session, [90, 80])
    with transaction(engine) as session:
        town = add_org(session, "大镇党委", "committee")
        organizer = add_person(session, "大镇干事", town, "organizer", phone=_phone())
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
