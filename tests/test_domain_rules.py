"""Domain rules that live in surveys/: sheets per category, audiences, typed dates, vetoes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from surveys.audiences import masses_count, satisfaction_audience
from surveys.categories import Audience, Category, Role, inspection_sheet_for
from surveys.deadlines import parse_local_time, parse_phase_time
from surveys.errors import RuleError
from surveys.instruments import get_instrument
from surveys.vetoes import parse_veto_condition

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_each_graded_category_has_one_inspection_sheet_and_the_committee_none() -> None:
    assert inspection_sheet_for(Category.VILLAGE) == "inspection_village"
    assert inspection_sheet_for(Category.COMMUNITY) == "inspection_village"
    for category in (Category.INSTITUTION, Category.ENTERPRISE, Category.SOCIAL):
        assert inspection_sheet_for(category) == "inspection_two_new"
    for category in Category:
        if category is not Category.COMMITTEE:
            assert get_instrument(inspection_sheet_for(category)).id.startswith("inspection_")
    with pytest.raises(ValueError):
        inspection_sheet_for(Category.COMMITTEE)


def test_the_masses_are_representatives_or_else_all_staff() -> None:
    def count(category: Category, congress: bool) -> int:
        return masses_count(category, representatives=7, staff=40, has_workers_congress=congress)

    assert count(Category.VILLAGE, False) == 7
    assert count(Category.COMMUNITY, False) == 7
    assert count(Category.ENTERPRISE, True) == 7
    assert count(Category.ENTERPRISE, False) == 40
    assert count(Category.INSTITUTION, False) == 40


def test_a_member_who_is_also_a_mass_representative_answers_once_as_member() -> None:
    assert satisfaction_audience({Role.MEMBER, Role.MASS}) is Audience.MEMBERS
    assert satisfaction_audience({Role.MASS}) is Audience.MASSES
    assert satisfaction_audience({Role.INSPECTOR}) is None


def test_deadlines_are_read_in_the_given_zone_and_stored_in_utc() -> None:
    assert parse_local_time("2027-03-20T18:00", SHANGHAI) == datetime(2027, 3, 20, 10, tzinfo=UTC)
    assert parse_local_time("2027-03-20 18:00", UTC) == datetime(2027, 3, 20, 18, tzinfo=UTC)
    with pytest.raises(RuleError) as bad:
        parse_local_time("next friday", SHANGHAI)
    assert bad.value.code == "bad_time"
    with pytest.raises(RuleError) as unknown:
        parse_phase_time("voting=2027-03-20T18:00", SHANGHAI)
    assert unknown.value.code == "unknown_phase"


def test_veto_conditions_are_read_by_code_or_chinese_name() -> None:
    assert parse_veto_condition("超計劃生育") == "excess_births"
    assert parse_veto_condition(" major_crime ") == "major_crime"
    assert parse_veto_condition("迟到") is None
