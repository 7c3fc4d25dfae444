"""An organizer creates a round: instruments pinned, deadlines kept, everyone given a form."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from storage.db import transaction
from storage.links import token_digest
from storage.models import (
    Assignment,
    Invitation,
    Organization,
    Person,
    PersonRole,
    RoundInstrument,
    RoundPhase,
)
from storage.roster import import_roster
from storage.rounds import (
    BranchLinkFull,
    InvitationExpired,
    InvitationUnknown,
    InvitationUsed,
    RoundError,
    branches_in_scope,
    close_round,
    create_branch_link,
    create_invitation,
    create_round,
    list_rounds,
    open_round,
    parse_options,
    parse_phase_time,
    redeem_invitation,
    roles_of,
    sync_assignments,
)
from surveys.categories import Phase, Role

DATA = Path(__file__).parent / "data" / "roster"
NOW = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)
DEADLINES = {phase: NOW + timedelta(days=20) for phase in Phase}
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def township(engine: Engine) -> Engine:
    """The small test township of tests/data/roster: 3 branches under 测试镇党委, 9 people."""
    with transaction(engine) as session:
        report = import_roster(session, [DATA / "organizations.csv", DATA / "people.csv"], now=NOW)
    assert report.ok
    return engine


def new_round(session: Session, name: str = "2027年度", **kwargs: object) -> int:
    """Create a round with all four phases; returns its id."""
    round_ = create_round(session, name=name, deadlines=DEADLINES, options={}, now=NOW, **kwargs)
    assert round_.id is not None
    return round_.id


def person_id(session: Session, phone: str) -> int:
    """The id of the roster person with this phone."""
    person = session.exec(select(Person).where(Person.phone == phone)).one()
    assert person.id is not None
    return person.id


def org_id(session: Session, name: str) -> int:
    """The id of the organization with this name."""
    org = session.exec(select(Organization).where(Organization.name == name)).one()
    assert org.id is not None
    return org.id


def assignments(session: Session, round_id: int) -> list[tuple[str, str, str, str]]:
    """(person name, instrument, branch name, audience) of every assignment of the round."""
    rows = session.exec(
        select(Person.name, Assignment.instrument_id, Organization.name, Assignment.audience)
        .join(Person, Person.id == Assignment.person_id)
        .join(Organization, Organization.id == Assignment.org_id)
        .where(Assignment.round_id == round_id)
    ).all()
    return sorted(rows)


def test_assignments_follow_each_persons_roles(township: Engine):
    with transaction(township) as session:
        round_id = new_round(session)
        made = assignments(session, round_id)

    east, west, firm = "东村党支部", "西社区党支部", "明星企业党支部"
    # Counted by hand from tests/data/roster/people.csv.
    assert made == sorted(
        [
            ("张三", "satisfaction", east, "members"),  # secretary, committee, member
            ("张三", "self_evaluation", east, "committee"),
            ("李四", "satisfaction", east, "members"),
            ("王五", "satisfaction", east, "members"),  # member and mass: once, as member
            ("赵六", "satisfaction", east, "masses"),
            ("钱七", "satisfaction", west, "members"),
            ("钱七", "self_evaluation", west, "committee"),
            ("孙八", "satisfaction", firm, "masses"),
            # 周九 is an inspector under the township: every branch, sheet by category.
            ("周九", "inspection_village", east, "inspectors"),
            ("周九", "inspection_village", west, "inspectors"),
            ("周九", "inspection_two_new", firm, "inspectors"),
            # 郑一 is an inspector listed under one branch: that branch only.
            ("郑一", "inspection_village", west, "inspectors"),
            # 吴十 organizes for the township: superior scoring of every branch.
            ("吴十", "superior_scoring", east, "organizers"),
            ("吴十", "superior_scoring", west, "organizers"),
            ("吴十", "superior_scoring", firm, "organizers"),
        ]
    )


def test_the_round_pins_instruments_and_keeps_deadlines(township: Engine):
    with transaction(township) as session:
        round_id = new_round(session)
        pinned = session.exec(
            select(RoundInstrument.instrument_id, RoundInstrument.version).where(
                RoundInstrument.round_id == round_id
            )
        ).all()
        phases = session.exec(select(RoundPhase).where(RoundPhase.round_id == round_id)).all()
    assert dict(pinned) == {
        "self_evaluation": 1,
        "satisfaction": 1,
        "inspection_village": 1,
        "inspection_two_new": 1,
        "superior_scoring": 1,
    }
    assert {row.phase: row.deadline for row in phases} == {p.value: d for p, d in DEADLINES.items()}


def test_a_round_with_only_the_satisfaction_phase_assigns_only_surveys(township: Engine):
    with transaction(township) as session:
        round_ = create_round(
            session,
            name="抽检",
            deadlines={Phase.SATISFACTION: NOW + timedelta(days=3)},
            options={},
            now=NOW,
        )
        made = assignments(session, round_.id)  # type: ignore[arg-type]
    assert {instrument for _, instrument, _, _ in made} == {"satisfaction"}
    assert len(made) == 6


def test_a_local_deadline_is_stored_in_utc(township: Engine):
    phase, deadline = parse_phase_time("satisfaction=2027-03-20T18:00", SHANGHAI)
    with transaction(township) as session:
        round_ = create_round(session, name="r", deadlines={phase: deadline}, now=NOW)
    with transaction(township) as session:
        stored = session.get(RoundPhase, (round_.id, "satisfaction"))
    assert stored is not None
    assert stored.deadline == datetime(2027, 3, 20, 10, 0, tzinfo=UTC)


def test_resync_after_a_roster_change_adds_only_what_is_missing(township: Engine, tmp_path: Path):
    with transaction(township) as session:
        round_id = new_round(session)
        before = len(assignments(session, round_id))
        assert sync_assignments(session, round_id) == 0
    people = (DATA / "people.csv").read_text(encoding="utf-8")
    (tmp_path / "people.csv").write_text(
        people + "冯二,13800000010,西社区党支部,党员\n", encoding="utf-8"
    )
    with transaction(township) as session:
        import_roster(session, [DATA / "organizations.csv", tmp_path / "people.csv"], now=NOW)
        added = sync_assignments(session, round_id)
        again = sync_assignments(session, round_id)
        after = assignments(session, round_id)
    assert (added, again) == (1, 0)
    assert len(after) == before + 1
    assert ("冯二", "satisfaction", "西社区党支部", "members") in after
    assert max(Counter(after).values()) == 1


def test_only_one_round_is_open_at_a_time(township: Engine):
    with transaction(township) as session:
        first, second = new_round(session, "第一轮"), new_round(session, "第二轮")
        open_round(session, round_id=first, now=NOW)
        with pytest.raises(RoundError) as refused:
            open_round(session, round_id=second, now=NOW)
        assert refused.value.code == "another_open"
        close_round(session, round_id=first, now=NOW)
        assert open_round(session, round_id=second, now=NOW).status == "open"
        with pytest.raises(RoundError) as reopened:
            open_round(session, round_id=first, now=NOW)
        assert reopened.value.code == "already_closed"
        with pytest.raises(RoundError) as missing:
            close_round(session, round_id=999, now=NOW)
        assert missing.value.code == "not_found"


def test_round_names_are_unique_and_deadlines_in_the_future(township: Engine):
    with transaction(township) as session:
        new_round(session, "2027年度")
        with pytest.raises(RoundError) as duplicate:
            new_round(session, "2027年度")
        assert duplicate.value.code == "duplicate_name"
        with pytest.raises(RoundError) as past:
            create_round(session, name="x", deadlines={Phase.SATISFACTION: NOW}, now=NOW)
        assert past.value.code == "deadline_past"


def test_options_are_validated_and_stored_as_their_readers_expect(township: Engine):
    options = parse_options(
        [
            "targets.members=0.9",
            "weights.satisfaction=0.5",
            "reminder_offsets=24,72",
            "small_group_threshold=3",
            "quiet_hours=22:00-7:30",
            "interim_time=12:00",
        ]
    )
    with transaction(township) as session:
        round_ = create_round(session, name="r", deadlines=DEADLINES, options=options, now=NOW)
    assert round_.options == {
        "targets": {"members": "0.9"},
        "weights": {"satisfaction": "0.5"},
        "reminder_offsets": [72, 24],
        "small_group_threshold": 3,
        "quiet_hours": {"start": "22:00", "end": "07:30"},
        "interim_time": "12:00",
    }
    assert parse_options(["quiet_hours=off"]) == {"quiet_hours": False}
    for bad, code in [
        ("colour=red", "unknown_option"),
        ("targets.members=1.5", "bad_option"),
        ("small_group_threshold=0", "bad_option"),
        ("quiet_hours=22:00", "bad_option"),
    ]:
        with pytest.raises(RoundError) as refused:
            parse_options([bad])
        assert refused.value.code == code


def test_options_given_to_create_round_are_checked_before_anything_is_stored(township: Engine):
    for bad in ({"quiet_hours": ["22:00", "07:30"]}, {"targets": {"memebrs": "0.9"}}):
        with transaction(township) as session, pytest.raises(RoundError) as refused:
            create_round(session, name="r", deadlines=DEADLINES, options=bad, now=NOW)
        assert refused.value.code == "bad_option"
    with transaction(township) as session:
        assert list_rounds(session) == []


def test_scope_of_organizer_inspector_and_secretary(township: Engine):
    with transaction(township) as session:
        branches = sorted(
            org_id(session, name) for name in ("东村党支部", "西社区党支部", "明星企业党支部")
        )
        organizer = person_id(session, "13800000008")
        secretary = person_id(session, "13800000001")
        branch_inspector = person_id(session, "13800000009")
        assert branches_in_scope(session, person_id=organizer, role=Role.ORGANIZER) == branches
        assert branches_in_scope(session, person_id=secretary, role=Role.SECRETARY) == [
            org_id(session, "东村党支部")
        ]
        assert branches_in_scope(session, person_id=branch_inspector, role=Role.INSPECTOR) == [
            org_id(session, "西社区党支部")
        ]
        assert branches_in_scope(session, person_id=secretary, role=Role.ORGANIZER) == []
        assert {role for role, _ in roles_of(session, secretary)} == {
            Role.SECRETARY,
            Role.COMMITTEE,
            Role.MEMBER,
        }


def test_a_personal_invitation_works_once(township: Engine):
    with transaction(township) as session:
        invitation = create_invitation(
            session, person_id=person_id(session, "13800000002"), round_id=None, now=NOW, days=30
        )
        token = invitation.token
    assert len(token) >= 16 and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    )
    with transaction(township) as session:
        assert redeem_invitation(session, token=token, now=NOW).uses == 1
    with transaction(township) as session, pytest.raises(InvitationUsed):
        redeem_invitation(session, token=token, now=NOW)
    with transaction(township) as session, pytest.raises(InvitationUnknown):
        redeem_invitation(session, token="no-such-token", now=NOW)


def test_an_invitation_expires(township: Engine):
    with transaction(township) as session:
        token = create_invitation(
            session, person_id=person_id(session, "13800000002"), round_id=None, now=NOW, days=7
        ).token
    with transaction(township) as session, pytest.raises(InvitationExpired):
        redeem_invitation(session, token=token, now=NOW + timedelta(days=7))
    with transaction(township) as session:
        unused = session.get(Invitation, token_digest(token))
    assert unused is not None and unused.uses == 0


def test_a_branch_link_admits_as_many_as_the_branch_has_representatives(township: Engine):
    with transaction(township) as session:
        village = session.exec(select(Organization).where(Organization.name == "东村党支部")).one()
        village.representatives = 2
        link = create_branch_link(session, org_id=village.id, round_id=None, now=NOW, days=30)  # type: ignore[arg-type]
    assert link.max_uses == 2
    for _ in range(2):
        with transaction(township) as session:
            redeem_invitation(session, token=link.token, now=NOW)
    with transaction(township) as session, pytest.raises(BranchLinkFull):
        redeem_invitation(session, token=link.token, now=NOW)


def test_concurrent_redeems_never_exceed_the_cap(township: Engine):
    with transaction(township) as session:
        village_id = org_id(session, "东村党支部")
        link = create_branch_link(session, org_id=village_id, round_id=None, now=NOW, days=30)
    cap, attempts = link.max_uses, link.max_uses + 10
    start = threading.Barrier(attempts)
    outcomes: list[str] = []
    lock = threading.Lock()

    def redeem() -> None:
        start.wait()
        try:
            with transaction(township) as session:
                redeem_invitation(session, token=link.token, now=NOW)
            outcome = "ok"
        except BranchLinkFull:
            outcome = "full"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=redeem) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with transaction(township) as session:
        stored = session.get(Invitation, token_digest(link.token))
    assert Counter(outcomes) == {"ok": cap, "full": attempts - cap}
    assert stored is not None and stored.uses == cap


def test_roles_are_not_assigned_for_the_committee_row(township: Engine):
    with transaction(township) as session:
        township_id = org_id(session, "测试镇党委")
        session.add(
            PersonRole(
                person_id=person_id(session, "13800000007"), org_id=township_id, role="member"
            )
        )
        round_id = new_round(session)
        branch_ids = set(
            session.exec(select(Assignment.org_id).where(Assignment.round_id == round_id)).all()
        )
    assert township_id not in branch_ids


def test_a_rounds_scope_kind_and_sample_are_typed_options() -> None:
    # docs/rules.md §2.4, §3.5, §11: one reader for the scope of a round.
    from surveys.categories import Category
    from surveys.grading import InstitutionSheet
    from surveys.options import OptionError, RoundOptions, parse_option_pairs
    from surveys.review import RoundKind

    raw = parse_option_pairs(["categories=村，社区", "institution_sheet=two_new"])
    assert raw == {"categories": ["village", "community"], "institution_sheet": "two_new"}
    options = RoundOptions.from_json(raw)
    assert options.scope == {Category.VILLAGE, Category.COMMUNITY}
    assert options.institution_sheet is InstitutionSheet.TWO_NEW
    assert options.grades(Category.VILLAGE, 1) and not options.grades(Category.ENTERPRISE, 2)
    assert not options.grades(Category.COMMITTEE, 3)
    quarterly = RoundOptions.from_json(
        {"kind": "quarterly_regrade", "categories": ["village", "enterprise"], "sample": [7]}
    )
    assert quarterly.kind is RoundKind.QUARTERLY_REGRADE
    assert quarterly.scope == {Category.ENTERPRISE}, "a re-grading grades 两新 only"
    assert quarterly.grades(Category.ENTERPRISE, 7) and not quarterly.grades(Category.ENTERPRISE, 8)
    assert RoundOptions.from_json({}).scope is None
    for bad in ("categories=党委", "categories=", "institution_sheet=hospital"):
        with pytest.raises(OptionError) as error:
            parse_option_pairs([bad])
        assert error.value.code == "bad_option", bad
