"""Participation against targets comes from roster counts and submitted assignments."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session

from storage.db import transaction
from storage.models import Assignment, Round, TelegramAccount
from storage.participation import non_respondents, round_coverage
from surveys.categories import Audience
from surveys.rules import CoverageStatus
from tests.factories import add_open_round, add_org, add_person, assign


def _submit(session: Session, assignment: Assignment) -> None:
    assignment.status = "submitted"
    session.add(assignment)


def test_a_village_branch_counts_members_and_representatives_against_80_percent(
    engine: Engine,
) -> None:
    with transaction(engine) as session:
        town = add_org(session, "董浜镇党委", "committee")
        village = add_org(session, "东村党支部", members=10, representatives=5, parent_id=town.id)
        round_ = add_open_round(session)
        for index in range(7):
            member = add_person(
                session, f"党员{index}", village, "member", phone=f"1390000010{index}"
            )
            assignment = assign(session, round_, member, village, "satisfaction", "members")
            if index < 6:
                _submit(session, assignment)
        mass = add_person(session, "代表甲", village, "mass", phone="13900000200")
        _submit(session, assign(session, round_, mass, village, "satisfaction", "masses"))
        round_id, village_id = round_.id, village.id

    with Session(engine) as session:
        coverage = round_coverage(session, round_id=round_id)
    assert set(coverage) == {village_id}, "the committee itself is not graded"
    members = coverage[village_id].coverage[Audience.MEMBERS]
    # 80% of 10 members = 8 needed; 6 answered, 2 more needed. Unregistered people count too.
    assert (members.respondents, members.denominator, members.required, members.needed) == (
        6,
        10,
        8,
        2,
    )
    assert members.status is CoverageStatus.BEHIND
    masses = coverage[village_id].coverage[Audience.MASSES]
    assert (masses.respondents, masses.required, masses.needed) == (1, 4, 3)


def test_an_enterprise_without_a_congress_needs_half_its_staff(engine: Engine) -> None:
    with transaction(engine) as session:
        firm = add_org(session, "华丰公司党支部", "enterprise", members=4, staff=9)
        round_ = add_open_round(session)
        round_id, firm_id = round_.id, firm.id
    with Session(engine) as session:
        masses = round_coverage(session, round_id=round_id)[firm_id].coverage[Audience.MASSES]
    assert (masses.denominator, masses.required) == (9, 5)  # ⌈50% × 9⌉


def test_members_only_branches_have_no_masses_target_and_overrides_apply(engine: Engine) -> None:
    with transaction(engine) as session:
        school = add_org(
            session,
            "中心小学党支部",
            "institution",
            members=20,
            staff=60,
            members_only=True,
            members_only_reason="寒假期间无法召集职工",
        )
        round_ = add_open_round(session)
        round_.options = {"targets": {"members": "0.9"}}
        round_id, school_id = round_.id, school.id
    with Session(engine) as session:
        branch = round_coverage(session, round_id=round_id)[school_id]
    assert Audience.MASSES not in branch.coverage
    assert branch.coverage[Audience.MEMBERS].required == 18


def test_non_respondents_are_named_with_whether_the_bot_can_reach_them(engine: Engine) -> None:
    with transaction(engine) as session:
        village = add_org(session, "西村党支部", members=3)
        round_ = add_open_round(session)
        done = add_person(session, "已答", village, "member", phone="13900000301")
        silent = add_person(session, "未注册", village, "member", phone="13900000302")
        blocked = add_person(session, "已屏蔽", village, "member", phone="13900000303")
        _submit(session, assign(session, round_, done, village, "satisfaction", "members"))
        assign(session, round_, silent, village, "satisfaction", "members")
        assign(session, round_, blocked, village, "satisfaction", "members")
        session.add(
            TelegramAccount(
                person_id=blocked.id,
                telegram_user_id=555,
                chat_id=555,
                bound_via="contact",
                blocked_at=datetime(2027, 3, 1, tzinfo=UTC),
            )
        )
        round_id, village_id = round_.id, village.id

    with Session(engine) as session:
        owing = non_respondents(session, round_id=round_id, org_id=village_id)
        assert session.get(Round, round_id) is not None
    assert [(p.name, p.registered, p.blocked, p.unreachable) for p in owing] == [
        ("已屏蔽", True, True, True),
        ("未注册", False, False, True),
    ]
