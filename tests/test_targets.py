"""Participation targets (seed 000) and coverage of a branch's respondents against them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from surveys.categories import Audience, Category
from surveys.rules import (
    DEFAULT_TARGET_RATES,
    CoverageStatus,
    OrgProfile,
    Target,
    coverage_for,
    targets_for,
)

D = Decimal


def profile(
    category: Category,
    *,
    members: int = 50,
    representatives: int = 11,
    staff: int = 33,
    congress: bool = False,
    members_only: bool = False,
) -> OrgProfile:
    """A branch profile with round numbers that make the percentages easy to check by hand."""
    return OrgProfile(category, members, representatives, staff, congress, members_only)


def targets(p: OrgProfile, **kwargs: object) -> dict[Audience, Target]:
    """Targets with 5 committee members and 3 inspectors unless told otherwise."""
    options: dict[str, object] = {"committee_members": 5, "inspectors": 3, **kwargs}
    return targets_for(p, **options)  # type: ignore[arg-type]


def test_default_rates_follow_seed_000() -> None:
    assert DEFAULT_TARGET_RATES["members"] == D("0.8")
    assert DEFAULT_TARGET_RATES["masses"] == D("0.8")
    assert DEFAULT_TARGET_RATES["masses_no_congress"] == D("0.5")
    assert DEFAULT_TARGET_RATES["committee"] == D(1)
    assert DEFAULT_TARGET_RATES["inspectors"] == D(1)


@pytest.mark.parametrize("category", [Category.VILLAGE, Category.COMMUNITY])
def test_village_and_community_masses_are_80_percent_of_representatives(
    category: Category,
) -> None:
    result = targets(profile(category, members=50, representatives=11, staff=999))
    assert result[Audience.MEMBERS] == Target(Audience.MEMBERS, 50, D("0.8"), 40)
    # 80% of 11 = 8.8 → 9; the staff count is irrelevant for villages
    assert result[Audience.MASSES] == Target(Audience.MASSES, 11, D("0.8"), 9)
    assert result[Audience.COMMITTEE] == Target(Audience.COMMITTEE, 5, D(1), 5)
    assert result[Audience.INSPECTORS] == Target(Audience.INSPECTORS, 3, D(1), 3)
    assert Audience.ORGANIZERS not in result


@pytest.mark.parametrize("category", [Category.INSTITUTION, Category.ENTERPRISE, Category.SOCIAL])
def test_with_a_workers_congress_masses_are_80_percent_of_worker_representatives(
    category: Category,
) -> None:
    result = targets(profile(category, representatives=20, staff=300, congress=True))
    assert result[Audience.MASSES] == Target(Audience.MASSES, 20, D("0.8"), 16)


@pytest.mark.parametrize("category", [Category.INSTITUTION, Category.ENTERPRISE, Category.SOCIAL])
def test_without_a_workers_congress_masses_are_half_of_all_staff(category: Category) -> None:
    # 50% of 33 = 16.5 → 17
    result = targets(profile(category, representatives=0, staff=33, congress=False))
    assert result[Audience.MASSES] == Target(Audience.MASSES, 33, D("0.5"), 17)


def test_members_only_branch_has_no_masses_target() -> None:
    result = targets(profile(Category.ENTERPRISE, members=7, members_only=True))
    assert Audience.MASSES not in result
    # 80% of 7 = 5.6 → 6
    assert result[Audience.MEMBERS].required == 6


def test_the_township_committee_has_no_targets() -> None:
    assert targets(profile(Category.COMMITTEE)) == {}


def test_organizers_appear_only_when_assigned() -> None:
    result = targets(profile(Category.VILLAGE), organizers=2)
    assert result[Audience.ORGANIZERS] == Target(Audience.ORGANIZERS, 2, D(1), 2)


def test_an_empty_roster_count_still_shows_the_audience() -> None:
    result = targets(profile(Category.VILLAGE, representatives=0), committee_members=0)
    assert result[Audience.MASSES] == Target(Audience.MASSES, 0, D("0.8"), 0)
    assert result[Audience.COMMITTEE].required == 0


def test_overrides_replace_the_default_rates() -> None:
    overrides = {"members": D("0.9"), "masses_no_congress": D("0.6"), "inspectors": D("0.5")}
    result = targets(profile(Category.ENTERPRISE, members=11, staff=33), overrides=overrides)
    assert result[Audience.MEMBERS].required == 10  # 9.9 → 10
    assert result[Audience.MASSES].required == 20  # 19.8 → 20
    assert result[Audience.INSPECTORS].required == 2  # 1.5 → 2
    assert result[Audience.COMMITTEE].required == 5  # untouched default 100%


def test_overriding_masses_does_not_touch_the_no_congress_rate() -> None:
    result = targets(profile(Category.INSTITUTION, staff=10), overrides={"masses": D("0.9")})
    assert result[Audience.MASSES] == Target(Audience.MASSES, 10, D("0.5"), 5)


@pytest.mark.parametrize(
    "overrides", [{"member": D("0.8")}, {"members": D("1.5")}, {"masses": D("-0.1")}]
)
def test_bad_overrides_are_refused(overrides: dict[str, Decimal]) -> None:
    with pytest.raises(ValueError):
        targets(profile(Category.VILLAGE), overrides=overrides)


def test_negative_roster_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        targets(profile(Category.VILLAGE, members=-1))


# --- coverage -------------------------------------------------------------------------------

MASSES_OF_11 = Target(Audience.MASSES, 11, D("0.8"), 9)


def test_reaching_the_required_count_meets_the_target() -> None:
    result = coverage_for(MASSES_OF_11, 9)
    assert result.status is CoverageStatus.MET
    assert result.needed == 0
    assert result.rate == D("0.8182")  # 9 / 11 = 0.81818…
    assert (result.required, result.target_rate, result.denominator) == (9, D("0.8"), 11)


def test_short_of_the_target_says_how_many_are_still_needed() -> None:
    result = coverage_for(MASSES_OF_11, 5)
    assert result.status is CoverageStatus.BEHIND
    assert result.needed == 4


def test_nobody_answered_yet_is_behind_not_missing() -> None:
    result = coverage_for(MASSES_OF_11, 0)
    assert (result.status, result.needed, result.rate) == (CoverageStatus.BEHIND, 9, D(0))


def test_no_roster_count_means_no_data() -> None:
    result = coverage_for(Target(Audience.MASSES, 0, D("0.8"), 0), 3)
    assert result.status is CoverageStatus.NO_DATA
    assert result.rate is None
    assert result.needed == 0


def test_more_respondents_than_the_roster_keeps_the_rate_above_one() -> None:
    result = coverage_for(MASSES_OF_11, 12)
    assert result.status is CoverageStatus.MET
    assert result.rate == D("1.0909")  # 12 / 11, not clipped: the roster is stale


def test_negative_respondents_are_refused() -> None:
    with pytest.raises(ValueError):
        coverage_for(MASSES_OF_11, -1)
