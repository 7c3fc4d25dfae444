"""Answers are kept as given; submitting is final, atomic and, for satisfaction, anonymous."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, inspect
from sqlmodel import Session, select

from storage.ballots import fold_due
from storage.db import transaction
from storage.models import (
    Answer,
    Assignment,
    Draft,
    Response,
    SatisfactionBallots,
    SatisfactionComments,
    SatisfactionTally,
)
from storage.responses import (
    AlreadySubmitted,
    Incomplete,
    StaleDraft,
    WindowState,
    draft_answers,
    phase_window,
    save_answer,
    submit,
    update_draft_view,
    window_state,
)
from storage.summary import SUM_COLUMNS
from storage.types import utcnow
from surveys.instruments import AnswerError, AnswerValue
from tests.factories import add_open_round, add_org, add_person, assign

FIVE_GOODS = ("q1", "q2", "q3", "q4", "q5")
SELF_EVALUATION_POINTS = {
    "leader": "18",
    "work_ideas": "9",
    "work_system": "13.5",
    "activity_venue": "8",
    "support_mechanism": "9",
    "performance": "17",
    "mass_evaluation": "12",
}

PHASE_OVER = datetime(2999, 1, 1, tzinfo=UTC)  # after every deadline (storage.ballots)


@pytest.fixture
def branch(engine: Engine) -> dict[str, int]:
    """A village branch with a member, a committee member and an open round."""
    with transaction(engine) as session:
        org = add_org(session, "东村党支部", members=30, representatives=20)
        member = add_person(session, "李梅", org, "member", phone="13900000001")
        committee = add_person(session, "王强", org, "committee", phone="13900000002")
        round_ = add_open_round(session)
        ballot = assign(session, round_, member, org, "satisfaction", "members")
        self_eval = assign(session, round_, committee, org, "self_evaluation", "committee")
        return {
            "org": org.id,
            "round": round_.id,
            "member": member.id,
            "ballot": ballot.id,
            "self_eval": self_eval.id,
        }  # type: ignore[return-value]


def _answer_satisfaction(engine: Engine, assignment_id: int, suggestion: str | None) -> None:
    choices = {"q1": "satisfied", "q2": "basically_satisfied", "q3": "satisfied"}
    choices |= {"q4": "dissatisfied", "q5": "satisfied", "q6": "good", "q7": "aware"}
    choices |= {"q8": "sometimes"}
    for item_id, option in choices.items():
        with transaction(engine) as session:
            save_answer(
                session,
                assignment_id=assignment_id,
                item_id=item_id,
                value=AnswerValue(choice=option),
            )
    if suggestion:
        with transaction(engine) as session:
            save_answer(
                session,
                assignment_id=assignment_id,
                item_id="q9",
                value=AnswerValue(text=suggestion),
            )


def test_each_answer_is_kept_at_once_and_survives_a_new_session(engine: Engine, branch) -> None:
    with transaction(engine) as session:
        save_answer(
            session,
            assignment_id=branch["ballot"],
            item_id="q1",
            value=AnswerValue(choice="satisfied"),
            position=1,
        )
    with Session(engine) as session:
        draft = session.get(Draft, branch["ballot"])
        assert draft is not None and draft.position == 1
        assert draft_answers(draft) == {"q1": AnswerValue(choice="satisfied")}
        assert session.get(Assignment, branch["ballot"]).status == "in_progress"


def test_a_wrong_answer_changes_nothing(engine: Engine, branch) -> None:
    with pytest.raises(AnswerError) as error, transaction(engine) as session:
        save_answer(
            session, assignment_id=branch["ballot"], item_id="q1", value=AnswerValue(choice="maybe")
        )
    assert error.value.code == "unknown_option"
    with Session(engine) as session:
        assert session.get(Draft, branch["ballot"]) is None
        assert session.get(Assignment, branch["ballot"]).status == "pending"


def test_a_tap_on_an_old_screen_is_refused(engine: Engine, branch) -> None:
    with transaction(engine) as session:
        revision = update_draft_view(session, assignment_id=branch["ballot"], position=0).revision
    with transaction(engine) as session:
        update_draft_view(
            session, assignment_id=branch["ballot"], position=1, expected_revision=revision
        )
    with pytest.raises(StaleDraft), transaction(engine) as session:
        update_draft_view(
            session, assignment_id=branch["ballot"], position=5, expected_revision=revision
        )
    with Session(engine) as session:
        assert session.get(Draft, branch["ballot"]).position == 1


def test_submitting_an_incomplete_survey_names_what_is_missing(engine: Engine, branch) -> None:
    with transaction(engine) as session:
        save_answer(
            session,
            assignment_id=branch["ballot"],
            item_id="q1",
            value=AnswerValue(choice="satisfied"),
        )
    with pytest.raises(Incomplete) as error, transaction(engine) as session:
        submit(session, assignment_id=branch["ballot"], now=utcnow())
    assert error.value.missing == ["q2", "q3", "q4", "q5", "q6", "q7", "q8"]
    with Session(engine) as session:
        assert session.get(Assignment, branch["ballot"]).status == "in_progress"


def test_a_satisfaction_ballot_becomes_counts_and_leaves_no_trace_of_its_author(
    engine: Engine, branch
) -> None:
    _answer_satisfaction(engine, branch["ballot"], "多开展活动")
    with transaction(engine) as session:
        outcome = submit(session, assignment_id=branch["ballot"], now=utcnow())
    assert outcome.anonymous and outcome.total is None
    fold_due(engine, now=PHASE_OVER)

    with Session(engine) as session:
        assignment = session.get(Assignment, branch["ballot"])
        assert assignment.status == "submitted" and assignment.submitted_at is None
        assert session.get(Draft, branch["ballot"]) is None
        assert session.exec(select(Response)).all() == []
        tallies = {
            (t.item_id, t.option_id): t.count for t in session.exec(select(SatisfactionTally))
        }
        assert tallies[("q2", "basically_satisfied")] == 1
        assert sum(tallies.values()) == 8
        assert session.get(SatisfactionBallots, (branch["round"], branch["org"])).ballots == 1
        box = session.get(SatisfactionComments, (branch["round"], branch["org"]))
        assert box.comments == ["多开展活动"]


def test_no_column_of_the_ballot_tables_can_point_back_to_a_person_or_a_time(
    engine: Engine,
) -> None:
    ballot_tables = ("satisfaction_tally", "satisfaction_ballots", "satisfaction_comments")
    inspector = inspect(engine)
    for table in ballot_tables:
        columns = {column["name"] for column in inspector.get_columns(table)}
        assert columns <= {
            "round_id",
            "org_id",
            "item_id",
            "option_id",
            "count",
            "ballots",
            "comments",
            *SUM_COLUMNS,  # the per-branch summary: counts and one sum, kept by the fold
        }
        for foreign_key in inspector.get_foreign_keys(table):
            assert foreign_key["referred_table"] in {"round", "organization"}


def test_two_ballots_of_a_branch_add_up_and_suggestions_are_shuffled_together(
    engine: Engine, branch
) -> None:
    with transaction(engine) as session:
        org = session.get(Assignment, branch["ballot"]).org_id
        from storage.models import Organization, Round

        second = add_person(
            session, "赵兰", session.get(Organization, org), "member", phone="13900000003"
        )
        other = assign(
            session,
            session.get(Round, branch["round"]),
            second,
            session.get(Organization, org),
            "satisfaction",
            "members",
        ).id
    _answer_satisfaction(engine, branch["ballot"], "路灯要修")
    _answer_satisfaction(engine, other, "希望多公开")
    for assignment_id in (branch["ballot"], other):
        with transaction(engine) as session:
            submit(session, assignment_id=assignment_id, now=utcnow())
    fold_due(engine, now=PHASE_OVER)
    with Session(engine) as session:
        assert session.get(SatisfactionBallots, (branch["round"], branch["org"])).ballots == 2
        count = session.exec(
            select(SatisfactionTally.count).where(
                SatisfactionTally.item_id == "q1", SatisfactionTally.option_id == "satisfied"
            )
        ).one()
        assert count == 2
        box = session.get(SatisfactionComments, (branch["round"], branch["org"]))
        assert sorted(box.comments) == sorted(["路灯要修", "希望多公开"])


def test_a_submitted_response_is_final(engine: Engine, branch) -> None:
    _answer_satisfaction(engine, branch["ballot"], None)
    with transaction(engine) as session:
        submit(session, assignment_id=branch["ballot"], now=utcnow())
    with pytest.raises(AlreadySubmitted), transaction(engine) as session:
        submit(session, assignment_id=branch["ballot"], now=utcnow())
    with pytest.raises(AlreadySubmitted), transaction(engine) as session:
        save_answer(
            session,
            assignment_id=branch["ballot"],
            item_id="q1",
            value=AnswerValue(choice="dissatisfied"),
        )
    fold_due(engine, now=PHASE_OVER)
    with Session(engine) as session:
        assert session.get(SatisfactionBallots, (branch["round"], branch["org"])).ballots == 1


def test_a_self_evaluation_is_stored_by_name_with_its_total(engine: Engine, branch) -> None:
    for item_id, points in SELF_EVALUATION_POINTS.items():
        with transaction(engine) as session:
            save_answer(
                session,
                assignment_id=branch["self_eval"],
                item_id=item_id,
                value=AnswerValue(points=Decimal(points)),
            )
    now = utcnow()
    with transaction(engine) as session:
        outcome = submit(session, assignment_id=branch["self_eval"], now=now)
    # 18 + 9 + 13.5 + 8 + 9 + 17 + 12
    assert outcome.total == Decimal("86.5")
    with Session(engine) as session:
        response = session.exec(select(Response)).one()
        assert response.total == Decimal("86.5")
        assert abs(response.submitted_at - now) < timedelta(seconds=1)
        answers = session.exec(select(Answer).where(Answer.response_id == response.id)).all()
        assert {a.item_id: a.score for a in answers}["work_system"] == Decimal("13.5")
        assert session.get(Assignment, branch["self_eval"]).submitted_at is not None


def test_the_answering_window_follows_the_round_and_the_deadline(engine: Engine, branch) -> None:
    with Session(engine) as session:
        from storage.models import Round

        round_ = session.get(Round, branch["round"])
        phase = phase_window(session, round_id=round_.id, phase="satisfaction")
        assert window_state(round_, phase, utcnow()) is WindowState.OPEN
        assert window_state(round_, phase, phase.deadline) is WindowState.CLOSED
        assert (
            window_state(round_, phase, phase.opens_at - timedelta(seconds=1))
            is WindowState.NOT_OPEN
        )
        round_.status = "closed"
        assert window_state(round_, phase, utcnow()) is WindowState.CLOSED
