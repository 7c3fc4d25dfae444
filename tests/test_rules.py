"""Grades, quota proposals, rates, scores and composites, checked against hand-worked cases."""

from __future__ import annotations

from collections.abc import Collection
from decimal import Decimal

import pytest

from surveys.categories import (
    Audience,
    Category,
    Phase,
    Role,
    graded,
    parse_category,
    parse_role,
    parse_roles,
)
from surveys.grading import display_score
from surveys.i18n import catalog, t
from surveys.rules import (
    DEFAULT_COMPOSITE_WEIGHTS,
    GRADE_ORDER,
    CoverageStatus,
    Grade,
    Proposal,
    ProposalReason,
    Rates,
    Standing,
    composite,
    grade_for,
    mean,
    propose_grades,
    quota_limits,
    rates_from_counts,
    satisfaction_score,
)

D = Decimal


def standings(*scores: str | int, vetoed: Collection[int] = ()) -> list[Standing]:
    """Branches numbered 1, 2, ... in the order given, with those scores."""
    return [
        Standing(org_id=i, score=D(str(s)), vetoed=i in vetoed) for i, s in enumerate(scores, 1)
    ]


def by_org(proposals: list[Proposal]) -> dict[int, Proposal]:
    """Index proposals by org_id."""
    return {p.org_id: p for p in proposals}


# --- grades ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "grade"),
    [
        ("0", Grade.POOR),
        ("59.99", Grade.POOR),
        ("60", Grade.AVERAGE),
        ("79.99", Grade.AVERAGE),
        ("80", Grade.FAIRLY_GOOD),
        ("89.99", Grade.FAIRLY_GOOD),
        ("90", Grade.GOOD),
        ("90.00", Grade.GOOD),
        ("100", Grade.GOOD),
    ],
)
def test_grade_boundaries_are_exact(score: str, grade: Grade) -> None:
    assert grade_for(D(score)) is grade


@pytest.mark.parametrize("score", ["-0.01", "100.01", "150"])
def test_scores_outside_the_hundred_point_scale_are_refused(score: str) -> None:
    with pytest.raises(ValueError):
        grade_for(D(score))


def test_grade_order_runs_best_to_worst() -> None:
    assert GRADE_ORDER == (Grade.GOOD, Grade.FAIRLY_GOOD, Grade.AVERAGE, Grade.POOR)


# --- quota limits ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "max_good", "min_poor"),
    [
        (0, 0, 0),
        (1, 0, 1),  # 0.2 → 0 好; 0.1 → at least 1 较差
        (5, 1, 1),
        (10, 2, 1),
        (13, 2, 2),  # seed 001: 2.6 → 2 好, 1.3 → 2 较差
        (20, 4, 2),
    ],
)
def test_quota_limits_floor_good_and_ceil_poor(n: int, max_good: int, min_poor: int) -> None:
    assert quota_limits(n, D("0.2"), D("0.1")) == (max_good, min_poor)


def test_quota_limits_use_exact_decimals() -> None:
    # 0.3 × 10 is exactly 3 (a float product would be 3.0000000000000004 → ceil 4).
    assert quota_limits(10, D("0.3"), D("0.3")) == (3, 3)


def test_quota_shares_outside_zero_to_one_are_refused() -> None:
    with pytest.raises(ValueError):
        quota_limits(10, D("1.2"), D("0.1"))


# --- proposals ------------------------------------------------------------------------------


def test_seed_township_of_thirteen_keeps_two_good_and_fills_two_poor_by_quota() -> None:
    # 13 branches, three above 90, none under 60: at most 2 好, at least 2 较差.
    result = propose_grades(standings(95, 93, 91, 88, 85, 82, 78, 75, 70, 66, 64, 62, 61))
    grades = [p.grade for p in result]
    assert (
        grades
        == [Grade.GOOD] * 2 + [Grade.FAIRLY_GOOD] * 4 + [Grade.AVERAGE] * 5 + [Grade.POOR] * 2
    )
    third = result[2]
    assert (third.by_threshold, third.reason) == (Grade.GOOD, ProposalReason.GOOD_QUOTA_EXCEEDED)
    assert [p.reason for p in result[-2:]] == [ProposalReason.POOR_QUOTA] * 2
    assert [p.by_threshold for p in result[-2:]] == [Grade.AVERAGE] * 2
    assert not any(p.tie_at_edge for p in result)


def test_proposals_come_sorted_by_score_with_competition_ranks() -> None:
    result = propose_grades(standings(70, 85, 85, 90, 60, 50, 40, 65, 75, 80))
    assert [p.org_id for p in result] == [4, 2, 3, 10, 9, 1, 8, 5, 6, 7]
    assert [p.rank for p in result] == [1, 2, 2, 4, 5, 6, 7, 8, 9, 10]


def test_many_branches_above_ninety_drop_to_fairly_good_beyond_the_quota() -> None:
    # 20 branches → at most 4 好; seven score ≥ 90, so three drop to 较好.
    scores = [99, 98, 97, 96, 95, 94, 90, 85, 85, 80, 75, 70, 70, 65, 60, 55, 50, 45, 40, 30]
    result = by_org(propose_grades(standings(*scores)))
    assert [result[i].grade for i in range(1, 8)] == [Grade.GOOD] * 4 + [Grade.FAIRLY_GOOD] * 3
    assert {result[i].reason for i in (5, 6, 7)} == {ProposalReason.GOOD_QUOTA_EXCEEDED}
    # Five are already under 60, more than the 2 required: nobody is added by quota.
    assert [result[i].grade for i in range(16, 21)] == [Grade.POOR] * 5
    assert ProposalReason.POOR_QUOTA not in {p.reason for p in result.values()}


def test_too_few_under_sixty_fills_the_lowest_ranked_by_quota() -> None:
    # 13 branches need 2 较差; only one is under 60, so the lowest of the rest joins it.
    result = by_org(propose_grades(standings(92, 88, 85, 84, 83, 82, 81, 79, 77, 75, 72, 68, 55)))
    assert (result[13].grade, result[13].reason) == (Grade.POOR, ProposalReason.THRESHOLD)
    assert (result[12].grade, result[12].reason) == (Grade.POOR, ProposalReason.POOR_QUOTA)
    assert result[11].grade is Grade.AVERAGE


def test_a_tie_at_the_good_edge_is_flagged_and_decided_by_stable_order() -> None:
    # 10 branches → 2 好 places; branches 2 and 3 tie at 92 for the second place.
    result = by_org(propose_grades(standings(95, 92, 92, 85, 80, 75, 70, 68, 65, 55)))
    assert result[1].grade is Grade.GOOD and not result[1].tie_at_edge
    assert result[2].grade is Grade.GOOD and result[2].tie_at_edge
    assert result[3].grade is Grade.FAIRLY_GOOD and result[3].tie_at_edge
    assert result[3].reason is ProposalReason.GOOD_QUOTA_EXCEEDED
    assert not result[4].tie_at_edge


def test_a_tie_at_the_poor_edge_is_flagged_on_the_whole_tied_group() -> None:
    # 10 branches → 1 较差 needed, none under 60; branches 8, 9 and 10 tie at 65 for the bottom.
    result = by_org(propose_grades(standings(91, 88, 85, 80, 78, 75, 70, 65, 65, 65)))
    assert [result[i].tie_at_edge for i in (8, 9, 10)] == [True, True, True]
    assert [result[i].grade for i in (8, 9, 10)] == [Grade.AVERAGE, Grade.AVERAGE, Grade.POOR]
    assert result[10].reason is ProposalReason.POOR_QUOTA
    assert not result[7].tie_at_edge


def test_tied_branches_that_are_all_under_sixty_are_not_an_edge() -> None:
    # The threshold, not the quota, makes them 较差: nothing for the committee to settle.
    result = propose_grades(standings(91, 88, 85, 80, 78, 75, 70, 66, 50, 50))
    assert not any(p.tie_at_edge for p in result)


def test_a_vetoed_top_branch_cannot_be_good_and_leaves_its_place_to_others() -> None:
    # 10 branches → 2 好; the best (98) is vetoed, so 95 and 93 take both places and 91 drops.
    result = by_org(propose_grades(standings(98, 95, 93, 91, 80, 75, 70, 65, 62, 50, vetoed={1})))
    assert (result[1].grade, result[1].reason) == (Grade.FAIRLY_GOOD, ProposalReason.VETO)
    assert result[1].by_threshold is Grade.GOOD
    assert result[1].rank == 1
    assert result[2].grade is Grade.GOOD and result[3].grade is Grade.GOOD
    assert result[4].reason is ProposalReason.GOOD_QUOTA_EXCEEDED


def test_a_vetoed_branch_below_ninety_keeps_its_threshold_grade() -> None:
    result = by_org(propose_grades(standings(95, 85, 70, 50, 65, vetoed={2})))
    assert (result[2].grade, result[2].reason) == (Grade.FAIRLY_GOOD, ProposalReason.THRESHOLD)


def test_all_branches_tied_are_all_flagged() -> None:
    # 10 branches all at 95: places for 2 好, 1 较差 by quota; everyone sits on an edge.
    result = propose_grades(standings(*[95] * 10))
    assert all(p.rank == 1 for p in result)
    assert all(p.tie_at_edge for p in result)
    assert [p.grade for p in result] == [Grade.GOOD] * 2 + [Grade.FAIRLY_GOOD] * 7 + [Grade.POOR]
    assert result[-1].org_id == 10 and result[-1].reason is ProposalReason.POOR_QUOTA


def test_a_single_branch_is_proposed_poor_because_the_minimum_is_one() -> None:
    (only,) = propose_grades(standings(96))
    assert (only.grade, only.reason, only.by_threshold) == (
        Grade.POOR,
        ProposalReason.POOR_QUOTA,
        Grade.GOOD,
    )


def test_a_single_branch_of_a_complete_pool_of_one_is_still_poor_by_quota() -> None:
    # docs/rules.md §5.3: with N = 1 the ⌈10%⌉ minimum wins over the threshold. Only a pool
    # that is really complete with one branch does this; a partial pool passes apply_quotas=False.
    (only,) = propose_grades(standings(96), apply_quotas=False)
    assert (only.grade, only.reason) == (Grade.GOOD, ProposalReason.THRESHOLD)


def test_without_quotas_only_thresholds_and_vetoes_apply() -> None:
    # A partial pool (docs/rules.md §5.2): four above 90 all stay 好, nobody is filled 较差,
    # a vetoed 95 is still 较好 and ties are nobody's edge.
    result = by_org(
        propose_grades(standings(99, 95, 93, 93, 85, 70, 62, vetoed={2}), apply_quotas=False)
    )
    assert [result[i].grade for i in range(1, 8)] == [
        Grade.GOOD,
        Grade.FAIRLY_GOOD,
        Grade.GOOD,
        Grade.GOOD,
        Grade.FAIRLY_GOOD,
        Grade.AVERAGE,
        Grade.AVERAGE,
    ]
    assert result[2].reason is ProposalReason.VETO
    assert {p.reason for i, p in result.items() if i != 2} == {ProposalReason.THRESHOLD}
    assert not any(p.tie_at_edge for p in result.values())


def test_proposals_compare_unrounded_scores() -> None:
    # docs/rules.md §5.1: 89.995 displays as 90.00 but is 较好.
    (only,) = propose_grades(standings("89.995"), apply_quotas=False)
    assert only.grade is Grade.FAIRLY_GOOD


def test_custom_shares_change_the_quotas() -> None:
    result = propose_grades(standings(95, 94, 93, 80, 70), good_share=D("0.4"), poor_share=D(0))
    assert [p.grade for p in result] == [
        Grade.GOOD,
        Grade.GOOD,
        Grade.FAIRLY_GOOD,
        Grade.FAIRLY_GOOD,
        Grade.AVERAGE,
    ]


def test_no_branches_gives_no_proposals() -> None:
    assert propose_grades([]) == []


def test_duplicate_branches_or_bad_scores_are_refused() -> None:
    with pytest.raises(ValueError):
        propose_grades([Standing(1, D(80)), Standing(1, D(70))])
    with pytest.raises(ValueError):
        propose_grades([Standing(1, D(101))])


# --- rates and the satisfaction score -------------------------------------------------------


def test_three_rates_from_counts() -> None:
    assert rates_from_counts(45, 50, 33, 40, 7, 10) == Rates(D("0.9"), D("0.825"), D("0.7"))


def test_rates_with_no_answers_are_none_not_zero() -> None:
    rates = rates_from_counts(0, 0, 0, 0, 0, 0)
    assert rates == Rates(None, None, None)


def test_rates_are_rounded_to_four_places() -> None:
    assert rates_from_counts(2, 3, 1, 3, 0, 1).satisfaction == D("0.6667")


def test_more_positive_answers_than_answers_is_refused() -> None:
    with pytest.raises(ValueError):
        rates_from_counts(5, 4, 0, 0, 0, 0)


def test_satisfaction_score_weighs_each_answer() -> None:
    # (3 × 100 + 1 × 60 + 1 × 0) / 5 = 72
    counts = {"satisfied": 3, "basically_satisfied": 1, "dissatisfied": 1}
    assert satisfaction_score(counts) == D("72.00")


def test_satisfaction_score_is_unrounded_and_displays_half_up_to_two_places() -> None:
    # 1 out of 8 with weight 1 is 0.125: half up gives 0.13 (banker's rounding would give 0.12).
    weights = {"satisfied": D(1), "basically_satisfied": D(0), "dissatisfied": D(0)}
    assert satisfaction_score({"satisfied": 1, "dissatisfied": 7}, weights) == D("0.125")
    assert display_score(D("0.125")) == D("0.13")
    # (100 + 2 × 60) / 3 = 73.333…
    assert display_score(satisfaction_score({"satisfied": 1, "basically_satisfied": 2})) == D(
        "73.33"
    )  # type: ignore[arg-type]


def test_satisfaction_score_without_answers_is_none() -> None:
    assert satisfaction_score({}) is None
    assert satisfaction_score({"satisfied": 0, "dissatisfied": 0}) is None


def test_satisfaction_score_refuses_unknown_options() -> None:
    with pytest.raises(ValueError):
        satisfaction_score({"very_satisfied": 3})


# --- composite and mean ---------------------------------------------------------------------

SELF, SAT, INSP = "self_evaluation", "satisfaction", "inspection"


def test_composite_with_every_part() -> None:
    # 0.3 × 80 + 0.4 × 70 + 0.3 × 90 = 24 + 28 + 27 = 79
    result = composite({SELF: D(80), SAT: D(70), INSP: D(90)})
    assert result.score == D("79.00")
    assert result.missing == ()
    assert result.weights_used == dict(DEFAULT_COMPOSITE_WEIGHTS)


def test_composite_without_satisfaction_splits_the_rest_evenly() -> None:
    # 0.3 and 0.3 renormalize to 0.5 each: 0.5 × 80 + 0.5 × 90 = 85
    result = composite({SELF: D(80), SAT: None, INSP: D(90)})
    assert result.score == D("85.00")
    assert result.missing == (SAT,)
    assert result.weights_used == {SELF: D("0.5"), INSP: D("0.5")}


def test_composite_without_self_evaluation() -> None:
    # (0.4 × 70 + 0.3 × 90) / 0.7 = 55 / 0.7 = 78.571…
    result = composite({SAT: D(70), INSP: D(90)})
    assert result.score is not None and display_score(result.score) == D("78.57")
    assert result.missing == (SELF,)
    assert sum(result.weights_used.values()) == pytest.approx(1)


def test_composite_without_inspection() -> None:
    # (0.3 × 80 + 0.4 × 70) / 0.7 = 52 / 0.7 = 74.2857…
    result = composite({SELF: D(80), SAT: D(70), INSP: None})
    assert result.score is not None and display_score(result.score) == D("74.29")
    assert result.missing == (INSP,)


def test_composite_with_nothing_has_no_score() -> None:
    result = composite({SELF: None, SAT: None, INSP: None})
    assert result.score is None
    assert result.missing == (SELF, SAT, INSP)
    assert result.weights_used == {}


def test_composite_with_custom_weights_and_unknown_parts() -> None:
    weights = {"a": D("0.5"), "b": D("0.5")}
    assert composite({"a": D(60), "b": D(100)}, weights).score == D("80.00")
    with pytest.raises(ValueError):
        composite({"c": D(60)}, weights)


def test_mean_of_scorers() -> None:
    # (80 + 85 + 90.5) / 3 = 85.1666…
    assert display_score(mean([D(80), D(85), D("90.5")])) == D("85.17")  # type: ignore[arg-type]
    # 80.005 rounds half up
    assert mean([D("80.00"), D("80.01")]) == D("80.005")  # unrounded (docs/rules.md §5.1)
    assert mean([]) is None


# --- parsing roster cells -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("村", Category.VILLAGE),
        (" 社区 ", Category.COMMUNITY),
        ("社區", Category.COMMUNITY),
        ("机关事业单位", Category.INSTITUTION),
        ("学校", Category.INSTITUTION),
        ("医院", Category.INSTITUTION),
        ("非公企业", Category.ENTERPRISE),
        ("企业", Category.ENTERPRISE),
        ("社会组织", Category.SOCIAL),
        ("镇党委", Category.COMMITTEE),
        ("党工委", Category.COMMITTEE),
        ("Village", Category.VILLAGE),
        ("SOCIAL", Category.SOCIAL),
    ],
)
def test_parse_category_reads_roster_names(text: str, category: Category) -> None:
    assert parse_category(text) is category


@pytest.mark.parametrize("text", ["", "农场", "villages"])
def test_parse_category_refuses_unknown(text: str) -> None:
    with pytest.raises(ValueError):
        parse_category(text)


def test_only_the_committee_is_not_graded() -> None:
    assert [c for c in Category if not graded(c)] == [Category.COMMITTEE]


def test_parse_roles_splits_dedupes_and_keeps_order() -> None:
    assert parse_roles("支部书记、党员，支委 党员;Inspector") == [
        Role.SECRETARY,
        Role.MEMBER,
        Role.COMMITTEE,
        Role.INSPECTOR,
    ]
    assert parse_roles("村民代表") == [Role.MASS]
    assert parse_roles("") == []


def test_parse_roles_names_the_bad_part() -> None:
    with pytest.raises(ValueError, match="会计"):
        parse_roles("党员、会计")


@pytest.mark.parametrize(
    ("text", "role"),
    [
        ("群众", Role.MASS),
        ("职工", Role.MASS),
        ("委员", Role.COMMITTEE),
        ("观摩打分人员", Role.INSPECTOR),
        ("检查组", Role.INSPECTOR),
        ("组织干事", Role.ORGANIZER),
        ("organizer", Role.ORGANIZER),
    ],
)
def test_parse_role_reads_roster_names(text: str, role: Role) -> None:
    assert parse_role(text) is role


# --- display names --------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_every_domain_value_has_a_display_name(locale: str) -> None:
    families = {
        "grade": Grade,
        "category": Category,
        "role": Role,
        "audience": Audience,
        "phase": Phase,
        "proposal_reason": ProposalReason,
        "coverage_status": CoverageStatus,
    }
    missing = [
        f"{prefix}.{member}"
        for prefix, enum in families.items()
        for member in enum
        if f"{prefix}.{member}" not in catalog(locale)
    ]
    assert missing == []


def test_grades_read_in_chinese() -> None:
    assert [t(f"grade.{g}") for g in GRADE_ORDER] == ["好", "较好", "一般", "较差"]
