"""Scoring: a committee's self-evaluation, an inspector's sheet, and a branch's anonymous tally."""

from __future__ import annotations

from decimal import Decimal

import pytest

from surveys.grading import display_score
from surveys.instruments import AnswerValue, get_instrument
from surveys.scoring import (
    IncompleteResponseError,
    ResponseScore,
    satisfaction_counts,
    score_response,
    summarize_satisfaction,
)

D = Decimal


def _points(**points: str) -> dict[str, AnswerValue]:
    return {item_id: AnswerValue(points=D(value)) for item_id, value in points.items()}


def test_a_committee_self_evaluation_adds_up_its_seven_indicators() -> None:
    answers = _points(
        leader="18",
        work_ideas="8.5",
        work_system="13",
        activity_venue="9",
        support_mechanism="7.5",
        performance="17",
        mass_evaluation="12",
    )
    # 18 + 8.5 + 13 + 9 + 7.5 + 17 + 12 = 85
    score = score_response(get_instrument("self_evaluation"), answers)
    assert score == ResponseScore(total=D(85), by_section={"indicators": D(85)})


def test_superior_scoring_ignores_the_free_text_opinion() -> None:
    answers = _points(
        leader="20",
        work_ideas="10",
        work_system="15",
        activity_venue="10",
        support_mechanism="10",
        performance="20",
        mass_evaluation="4.5",
    )
    answers["opinion"] = AnswerValue(text="群众评价偏低，需整改")
    score = score_response(get_instrument("superior_scoring"), answers)
    assert score.total == D("89.5")  # 85 full marks on six indicators + 4.5
    assert score.by_section == {"indicators": D("89.5")}


def test_an_inspector_sheet_with_deductions() -> None:
    sheet = get_instrument("inspection_village")
    answers = {item.id: AnswerValue(deduction=D(0)) for item in sheet.items}
    answers["basics_6"] = AnswerValue(deduction=D("1.5"), reason="三个清单未建台账")  # 4 → 2.5
    answers["organization_2"] = AnswerValue(deduction=D(3), reason="无会议记录")  # 3 → 0
    answers["members_4"] = AnswerValue(deduction=D(1), reason="未公开")  # 1 → 0
    answers["support_2"] = AnswerValue(deduction=D("0.5"), reason="缺支付凭证")  # 3 → 2.5
    score = score_response(sheet, answers)
    assert score.by_section == {
        "basics": D("23.5"),  # 25 − 1.5
        "organization": D(27),  # 30 − 3
        "members": D(19),  # 20 − 1
        "activities": D(15),
        "support": D("9.5"),  # 10 − 0.5
    }
    assert score.total == D(94)  # 100 − 6


def test_a_deduction_larger_than_the_item_never_goes_below_zero() -> None:
    sheet = get_instrument("inspection_two_new")
    answers = {item.id: AnswerValue(deduction=D(0)) for item in sheet.items}
    # Stored before validation tightened, or typed on paper: 7 off a 5-point line.
    answers["support_2"] = AnswerValue(deduction=D(7), reason="经费未列支")
    score = score_response(sheet, answers)
    assert score.by_section["support"] == D(5)  # 5 + max(0, 5 − 7)
    assert score.total == D(95)


def test_an_unanswered_scored_line_is_not_given_full_points() -> None:
    sheet = get_instrument("inspection_village")
    answers = {item.id: AnswerValue(deduction=D(0)) for item in sheet.items}
    del answers["members_4"], answers["support_3"]
    with pytest.raises(IncompleteResponseError) as caught:
        score_response(sheet, answers)
    assert caught.value.missing == ["members_4", "support_3"]


def test_the_satisfaction_survey_has_no_points_total() -> None:
    survey = get_instrument("satisfaction")
    ballot = {f"q{n}": AnswerValue(choice="satisfied") for n in range(1, 6)}
    assert score_response(survey, ballot) == ResponseScore(total=None, by_section={})


def test_a_ballot_adds_its_choices_to_the_tallies_but_not_its_suggestion() -> None:
    survey = get_instrument("satisfaction")
    ballot = {
        "q9": AnswerValue(text="希望多办实事"),
        "q1": AnswerValue(choice="satisfied"),
        "q2": AnswerValue(choice="basically_satisfied"),
        "q3": AnswerValue(choice="satisfied"),
        "q4": AnswerValue(choice="dissatisfied"),
        "q5": AnswerValue(choice="satisfied"),
        "q6": AnswerValue(choice="fairly_good"),
        "q7": AnswerValue(choice="partly_aware"),
        "q8": AnswerValue(choice="never"),
    }
    assert satisfaction_counts(survey, ballot) == [
        ("q1", "satisfied"),
        ("q2", "basically_satisfied"),
        ("q3", "satisfied"),
        ("q4", "dissatisfied"),
        ("q5", "satisfied"),
        ("q6", "fairly_good"),
        ("q7", "partly_aware"),
        ("q8", "never"),
    ]


# Ten ballots at a branch meeting, tallied by hand:
#          满意  基本满意  不满意
#   q1      8       2        0
#   q2      6       3        1
#   q3      5       4        1
#   q4      6       3        1
#   q5      5       3        2
#   sum    30      15        5   → 满意率 45/50 = 0.9; score (30·100 + 15·60 + 5·0)/50 = 78
#   q7 了解 4, 部分了解 3, 不了解 3 → 知晓率 7/10 = 0.7
#   q8 经常 2, 偶尔 3, 未参加 5     → 参与率 5/10 = 0.5
TEN_BALLOTS = {
    ("q1", "satisfied"): 8,
    ("q1", "basically_satisfied"): 2,
    ("q2", "satisfied"): 6,
    ("q2", "basically_satisfied"): 3,
    ("q2", "dissatisfied"): 1,
    ("q3", "satisfied"): 5,
    ("q3", "basically_satisfied"): 4,
    ("q3", "dissatisfied"): 1,
    ("q4", "satisfied"): 6,
    ("q4", "basically_satisfied"): 3,
    ("q4", "dissatisfied"): 1,
    ("q5", "satisfied"): 5,
    ("q5", "basically_satisfied"): 3,
    ("q5", "dissatisfied"): 2,
    ("q6", "good"): 4,
    ("q6", "fairly_good"): 6,
    ("q7", "aware"): 4,
    ("q7", "partly_aware"): 3,
    ("q7", "unaware"): 3,
    ("q8", "often"): 2,
    ("q8", "sometimes"): 3,
    ("q8", "never"): 5,
}


def test_a_branch_tally_gives_the_three_rates_and_the_score() -> None:
    summary = summarize_satisfaction(get_instrument("satisfaction"), 10, TEN_BALLOTS)
    assert summary.ballots == 10
    assert (summary.satisfied, summary.satisfaction_answers) == (45, 50)
    assert (summary.aware, summary.awareness_answers) == (7, 10)
    assert (summary.participating, summary.participation_answers) == (5, 10)
    assert summary.satisfaction_rate == D("0.9")
    assert summary.awareness_rate == D("0.7")
    assert summary.participation_rate == D("0.5")
    assert summary.score == D("78.00")
    assert summary.rates.satisfaction == D("0.9")


def test_the_distribution_lists_every_option_even_unchosen_ones() -> None:
    summary = summarize_satisfaction(get_instrument("satisfaction"), 10, TEN_BALLOTS)
    assert summary.distribution["q1"] == {
        "satisfied": 8,
        "basically_satisfied": 2,
        "dissatisfied": 0,
    }
    assert summary.distribution["q6"] == {"good": 4, "fairly_good": 6, "average": 0, "poor": 0}
    assert "q9" not in summary.distribution


def test_rates_and_score_round_as_the_summary_sheet_does() -> None:
    # Three answers to q1 only: 满意, 基本满意, 不满意 → (100 + 60 + 0)/3 = 53.333… → 53.33;
    # 满意率 2/3 = 0.6667 (four places).
    tallies = {("q1", "satisfied"): 1, ("q1", "basically_satisfied"): 1, ("q1", "dissatisfied"): 1}
    summary = summarize_satisfaction(get_instrument("satisfaction"), 3, tallies)
    assert summary.score is not None and display_score(summary.score) == D("53.33")
    assert summary.satisfaction_rate == D("0.6667")


def test_an_empty_tally_has_no_rates_and_no_score() -> None:
    summary = summarize_satisfaction(get_instrument("satisfaction"), 0, {})
    assert (summary.satisfaction_rate, summary.awareness_rate, summary.participation_rate) == (
        None,
        None,
        None,
    )
    assert summary.score is None


def test_a_tally_for_an_option_the_form_does_not_have_is_an_error() -> None:
    with pytest.raises(KeyError):
        summarize_satisfaction(get_instrument("satisfaction"), 1, {("q1", "very_happy"): 1})
    with pytest.raises(ValueError):
        summarize_satisfaction(get_instrument("satisfaction"), 1, {("q1", "satisfied"): -1})
