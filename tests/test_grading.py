"""Scope, grade decisions, vetoes, members-only, sign-offs and the rectification ledger."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from storage.db import transaction
from storage.decisions import DecisionError, confirm_exception, preview, request_exception
from storage.grading import (
    GradingError,
    add_rectification,
    close_rectification,
    decide_grade,
    ledger,
    mark_members_only,
    record_veto,
    rectification_reminders,
    sign,
    signatures,
)
from storage.models import (
    AuditLog,
    DecisionExceptionRow,
    GradeDecision,
    Organization,
    Round,
    TelegramAccount,
)
from storage.pending import clear_pending, pending_for, set_pending
from storage.scope import scope_for
from storage.tallies import round_tally
from surveys.deadlines import parse_due_date
from surveys.rules import Grade, ProposalReason
from surveys.vetoes import parse_veto_condition
from tests.factories import add_org, add_person, cast_ballot
from tests.factories import build_graded_township as _graded_township
from tests.factories import build_scored_township as build_township
from tests.factories import new_phone as _phone
from tests.support_races import wait_until, waiting_on_a_lock

NOW = datetime(2027, 3, 20, 2, 0, tzinfo=UTC)


def _audits(session: Session, action: str) -> list[AuditLog]:
    return list(session.exec(select(AuditLog).where(AuditLog.action == action)).all())


# --- Scope -------------------------------------------------------------------------------


def test_each_role_sees_its_own_branches(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
        town = session.get(Organization, ids["town"])
        assert town is not None
        organizer = add_person(session, "陈华", town, "organizer", phone=_phone())
        ids["organizer"] = organizer.id  # type: ignore[assignment]
    with Session(engine) as session:

        def scope(person: str) -> frozenset[int]:
            return scope_for(session, person_id=ids[person], round_id=ids["round"]).visible_orgs

        assert scope("organizer") == {ids["east"], ids["west"], ids["south"]}
        assert scope("secretary_east") == {ids["east"]}
        assert scope("inspector_1") == {ids["east"]}, "only the branch they inspect"
        assert scope("member_south") == frozenset()
        nobody = scope_for(session, person_id=None, round_id=ids["round"])
        assert nobody.empty and not nobody.can_see(ids["east"])
        east_secretary = scope_for(session, person_id=ids["secretary_east"], round_id=ids["round"])
        assert not east_secretary.organizes(ids["east"])
        assert east_secretary.keeps_ledger_of(ids["east"])
        inspector = scope_for(session, person_id=ids["inspector_1"], round_id=ids["round"])
        # Inspecting a branch does not make one its 工作组组长 (a roster role of its own).
        assert not inspector.leads_work_group_of(ids["east"])
        assert not inspector.leads_work_group_of(ids["west"])


# --- Grade decisions ---------------------------------------------------------------------


def test_confirming_locks_the_proposed_grade_and_audits_it(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, ids = _graded_township(session, [95, 85, 75, 65, 55])
    with transaction(engine) as session:
        decision = decide_grade(session, round_id=round_id, org_id=ids[1], person_id=None, now=NOW)
        assert (decision.proposed_grade, decision.final_grade) == ("fairly_good", "fairly_good")
    with Session(engine) as session:
        stored = session.get(GradeDecision, (round_id, ids[1]))
        assert stored is not None and stored.locked and stored.score == Decimal("85.00")
        assert [a.detail["final"] for a in _audits(session, "grade.confirm")] == ["fairly_good"]
        tally = round_tally(session, round_id=round_id).branch(ids[1])
        assert tally and tally.decision and tally.decision.locked
        assert tally.grade is Grade.FAIRLY_GOOD
    with transaction(engine) as session, pytest.raises(GradingError) as error:
        decide_grade(
            session,
            round_id=round_id,
            org_id=ids[1],
            person_id=None,
            now=NOW,
            grade=Grade.GOOD,
            reason="改",
        )
    assert error.value.code == "locked"


def test_an_override_without_a_reason_is_refused_and_changes_nothing(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, ids = _graded_township(session, [95, 85, 75, 65, 55])
    for blank in (None, "   "):
        with transaction(engine) as session, pytest.raises(GradingError) as error:
            decide_grade(
                session,
                round_id=round_id,
                org_id=ids[2],
                person_id=None,
                now=NOW,
                grade=Grade.FAIRLY_GOOD,
                reason=blank,
            )
        assert error.value.code == "reason_required"
    with Session(engine) as session:
        assert session.get(GradeDecision, (round_id, ids[2])) is None
        assert _audits(session, "grade.override") == []


def test_an_override_with_a_reason_keeps_both_grades_and_the_reason(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, ids = _graded_township(session, [95, 85, 75, 65, 55])
    with transaction(engine) as session:
        decide_grade(
            session,
            round_id=round_id,
            org_id=ids[2],
            person_id=None,
            now=NOW,
            grade=Grade.FAIRLY_GOOD,
            reason="全年无信访，群众评价高",
        )
    with Session(engine) as session:
        stored = session.get(GradeDecision, (round_id, ids[2]))
        assert stored is not None
        assert (stored.proposed_grade, stored.final_grade) == ("average", "fairly_good")
        assert stored.reason == "全年无信访，群众评价高" and stored.locked
        assert len(_audits(session, "grade.override")) == 1


def test_a_branch_without_a_score_cannot_be_graded(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    with transaction(engine) as session, pytest.raises(GradingError) as error:
        decide_grade(session, round_id=ids["round"], org_id=ids["south"], person_id=None, now=NOW)
    assert error.value.code == "no_proposal"


# --- Vetoes and members-only -------------------------------------------------------------


def test_two_organizers_recording_the_same_veto_at_once_record_it_once(engine: Engine) -> None:
    """Two ✅ taps at the same moment on PostgreSQL: the second waits, then is refused."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writers already queue (BEGIN IMMEDIATE)")
    with transaction(engine) as session:
        round_id, ids = _graded_township(session, [95, 85, 75, 65, 55])
    veto = {"round_id": round_id, "org_id": ids[0], "condition": "超计划生育", "note": None}
    second: list[BaseException | None] = []

    def record_second() -> None:
        try:
            with transaction(engine) as other:
                record_veto(other, **veto, person_id=None, now=NOW)
            second.append(None)
        except GradingError as error:
            second.append(error)

    with transaction(engine) as first:
        record_veto(first, **veto, person_id=None, now=NOW)
        racer = threading.Thread(target=record_second)
        racer.start()
        wait_until(lambda: second or waiting_on_a_lock(engine))  # raced, or queued
    racer.join(timeout=30)
    assert len(second) == 1 and isinstance(second[0], GradingError)
    assert second[0].code == "already_recorded"
    with Session(engine) as session:
        assert len(_audits(session, "grade.veto")) == 1


def test_a_veto_by_its_chinese_name_stops_a_good_proposal(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, ids = _graded_township(session, [95, 85, 75, 65, 55])
        record_veto(
            session,
            round_id=round_id,
            org_id=ids[0],
            condition="超计划生育",
            note="2026年",
            person_id=None,
            now=NOW,
        )
    with Session(engine) as session:
        top = round_tally(session, round_id=round_id).branch(ids[0])
        assert top and top.vetoes == ["excess_births"]
        assert top.proposal and top.proposal.grade is Grade.FAIRLY_GOOD
        assert top.proposal.reason is ProposalReason.VETO
        assert len(_audits(session, "grade.veto")) == 1
        # Stamped with the caller's clock (2027), not the wall clock.
        assert _audits(session, "grade.veto")[0].at == NOW
    assert parse_veto_condition("違紀違法黨員") == "disciplinary_violation"
    with transaction(engine) as session, pytest.raises(GradingError):
        record_veto(
            session,
            round_id=round_id,
            org_id=ids[0],
            condition="迟到",
            note=None,
            person_id=None,
            now=NOW,
        )


def test_members_only_needs_a_reason_and_drops_the_masses_target(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    with transaction(engine) as session, pytest.raises(GradingError):
        mark_members_only(session, org_id=ids["south"], reason=" ", person_id=None, now=NOW)
    with transaction(engine) as session:
        mark_members_only(
            session, org_id=ids["south"], reason="居民外出务工", person_id=None, now=NOW
        )
    with Session(engine) as session:
        south = round_tally(session, round_id=ids["round"]).branch(ids["south"])
        assert south is not None and south.members_only
        assert "masses" not in south.coverage
        assert _audits(session, "org.members_only")[0].detail["reason"] == "居民外出务工"


# --- Sign-offs ---------------------------------------------------------------------------


def test_each_capacity_signs_once(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
        for role, person in (("secretary", "secretary_east"), ("work_group_leader", "inspector_1")):
            sign(
                session,
                round_id=ids["round"],
                org_id=ids["east"],
                role=role,
                person_id=ids[person],
                now=NOW,
            )
    with transaction(engine) as session, pytest.raises(GradingError) as error:
        sign(
            session,
            round_id=ids["round"],
            org_id=ids["east"],
            role="secretary",
            person_id=ids["secretary_east"],
            now=NOW,
        )
    assert error.value.code == "already_signed"
    with Session(engine) as session:
        signed = signatures(session, round_id=ids["round"])[ids["east"]]
    assert signed["secretary"].name == "张书记"
    assert signed["work_group_leader"].name == "王组长"
    assert signed["secretary"].signed_at == NOW


# --- Conversation state ------------------------------------------------------------------


def test_pending_state_survives_in_the_database_until_cleared_or_stale(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    person = ids["organizer"] if "organizer" in ids else ids["inspector_1"]
    with transaction(engine) as session:
        set_pending(
            session,
            person_id=person,
            kind="override",
            data={"org_id": 5, "grade": "good"},
            now=NOW,
        )
    with Session(engine) as session:
        pending = pending_for(session, person_id=person, now=NOW + timedelta(minutes=29))
        assert pending is not None and pending.kind == "override"
        assert pending.data == {"org_id": 5, "grade": "good"}
        assert pending_for(session, person_id=person, now=NOW + timedelta(minutes=30)) is None
    with transaction(engine) as session:
        clear_pending(session, person_id=person)
    with Session(engine) as session:
        assert pending_for(session, person_id=person, now=NOW) is None


def test_a_new_pending_step_replaces_the_earlier_one_and_restarts_its_limit(
    engine: Engine,
) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
    person = ids["inspector_1"]
    later = NOW + timedelta(minutes=20)
    with transaction(engine) as session:
        set_pending(session, person_id=person, kind="override", data={"org_id": 5}, now=NOW)
        set_pending(session, person_id=person, kind="rectify", data={"step": "matter"}, now=later)
    with Session(engine) as session:
        pending = pending_for(session, person_id=person, now=NOW + timedelta(minutes=40))
        assert pending is not None and pending.kind == "rectify"
        assert pending.data == {"step": "matter"}
        assert pending.expires_at == later + timedelta(minutes=30)


# --- Rectification -----------------------------------------------------------------------


def test_due_dates_are_read_in_the_usual_ways() -> None:
    today = date(2027, 3, 20)
    assert parse_due_date("2027-04-30", today=today) == date(2027, 4, 30)
    assert parse_due_date("2027年4月30日", today=today) == date(2027, 4, 30)
    assert parse_due_date("４月３０日", today=today) == date(2027, 4, 30)
    assert parse_due_date("1月5日", today=today) == date(2028, 1, 5), "a past day means next year"
    assert parse_due_date("2月30日", today=today) is None
    assert parse_due_date("下周", today=today) is None


def test_a_ledger_line_is_added_reminded_when_due_and_closed_once(engine: Engine) -> None:
    with transaction(engine) as session:
        ids = build_township(session)
        session.add(
            TelegramAccount(
                person_id=ids["secretary_east"],
                telegram_user_id=7001,
                chat_id=7001,
                bound_via="invitation",
            )
        )
        soon = add_rectification(
            session,
            org_id=ids["east"],
            round_id=ids["round"],
            matter="三会一课记录不全",
            measures="补齐记录，每月检查",
            due_on=date(2027, 3, 22),
            responsible="张书记",
            person_id=ids["secretary_east"],
            now=NOW,
        )
        add_rectification(
            session,
            org_id=ids["east"],
            round_id=ids["round"],
            matter="活动阵地老旧",
            measures="翻新活动室",
            due_on=date(2027, 6, 30),
            responsible="李委员",
            person_id=ids["secretary_east"],
            now=NOW,
        )
        soon_id = soon.id
    with transaction(engine) as session, pytest.raises(GradingError):
        add_rectification(
            session,
            org_id=ids["east"],
            round_id=ids["round"],
            matter="  ",
            measures="x",
            due_on=date(2027, 6, 30),
            responsible="x",
            person_id=None,
            now=NOW,
        )
    with Session(engine) as session:
        reminders = rectification_reminders(session, today=date(2027, 3, 20))
    assert [(r.item_id, r.chat_id) for r in reminders] == [(soon_id, 7001)]
    with transaction(engine) as session:
        close_rectification(session, item_id=soon_id, person_id=ids["secretary_east"], now=NOW)  # type: ignore[arg-type]
    with transaction(engine) as session, pytest.raises(GradingError) as error:
        close_rectification(session, item_id=soon_id, person_id=None, now=NOW)  # type: ignore[arg-type]
    assert error.value.code == "already_closed"
    with Session(engine) as session:
        assert rectification_reminders(session, today=date(2027, 3, 20)) == []
        lines = ledger(session, org_ids=[ids["east"]])
    assert [line.matter for line in lines] == ["三会一课记录不全", "活动阵地老旧"]
    assert lines[0].closed_at == NOW


def test_due_lines_are_reminded_through_the_outbox_once(engine: Engine) -> None:
    pytest.importorskip("storage.outbox")
    from storage.grading import enqueue_rectification_reminders
    from storage.models import OutboxMessage

    _secretary_with_ledger_item(engine, 7002, "党员活动室未开放", date(2027, 3, 23))
    for _ in range(2):
        with transaction(engine) as session:
            enqueue_rectification_reminders(session, today=date(2027, 3, 20), now=NOW)
    with Session(engine) as session:
        rows = session.exec(select(OutboxMessage)).all()
    assert [(row.kind, row.chat_id) for row in rows] == [("rectification_due", 7002)]
    assert "党员活动室未开放" in rows[0].payload["text"] and "2027-03-23" in rows[0].payload["text"]


def test_a_second_organizer_deciding_at_the_same_moment_is_refused_cleanly(
    engine: Engine,
) -> None:
    from storage.grading import _store_decision

    with transaction(engine) as session:
        round_id, ids = _graded_township(session, [95, 85, 75, 65, 55])
    with transaction(engine) as session:
        decide_grade(session, round_id=round_id, org_id=ids[1], person_id=None, now=NOW)
    # The other organizer read "undecided" before the first committed, then writes.
    with transaction(engine) as session:
        late = GradeDecision(
            round_id=round_id,
            org_id=ids[1],
            proposed_grade="fairly_good",
            final_grade="good",
            reason="迟到的决定",
            locked=True,
        )
        with pytest.raises(GradingError) as error:
            _store_decision(session, late)
        assert error.value.code == "locked"
        record_veto(
            session,
            round_id=round_id,
            org_id=ids[0],
            condition="不合格党员",
            note=None,
            person_id=None,
            now=NOW,
        )
    with Session(engine) as session:
        stored = session.get(GradeDecision, (round_id, ids[1]))
        assert stored is not None and stored.final_grade == "fairly_good", "the first one stands"
        assert _audits(session, "grade.veto"), "the transaction went on after the refusal"


def test_the_planner_reminds_the_secretary_of_a_ledger_item_once(engine: Engine) -> None:
    """The jobs' every-minute planner is what sends ledger reminders, each once."""
    from zoneinfo import ZoneInfo

    from jobs.runner import enqueue_due
    from storage.models import OutboxMessage

    _secretary_with_ledger_item(engine, 7003, "台账不全", (NOW + timedelta(days=2)).date())
    for minute in range(3):
        enqueue_due(engine, now=NOW + timedelta(minutes=minute), zone=ZoneInfo("Asia/Shanghai"))
    with Session(engine) as session:
        kinds = [row.kind for row in session.exec(select(OutboxMessage)).all()]
    assert kinds.count("rectification_due") == 1


def _secretary_with_ledger_item(
    engine: Engine, telegram_id: int, matter: str, due_on: date
) -> None:
    """The east branch's secretary on Telegram, and one open ledger item of the branch."""
    with transaction(engine) as session:
        ids = build_township(session)
        session.add(
            TelegramAccount(
                person_id=ids["secretary_east"],
                telegram_user_id=telegram_id,
                chat_id=telegram_id,
                bound_via="invitation",
            )
        )
        add_rectification(
            session,
            org_id=ids["east"],
            round_id=ids["round"],
            matter=matter,
            measures="限期整改",
            due_on=due_on,
            responsible="张书记",
            person_id=None,
            now=NOW,
        )


# --- Decisions checked against the pool (docs/rules.md §8) -----------------------------------

THIRTEEN = [96, 94, 92, 91, 88, 86, 84, 82, 78, 74, 70, 66, 58]


def test_a_third_good_of_thirteen_needs_an_exception_confirmed_by_a_second_organizer(
    engine: Engine,
) -> None:
    with transaction(engine) as session:
        round_id, ids = _graded_township(session, THIRTEEN)
        town = session.get(Organization, session.get(Organization, ids[0]).parent_id)  # type: ignore[union-attr]
        assert town is not None
        first = add_person(session, "甲组织", town, "organizer", phone=_phone()).id
        second = add_person(session, "乙组织", town, "organizer", phone=_phone()).id
        assert first is not None and second is not None
    # 13 branches: at most 2 好 (seed 001 五). 92 is the third: proposed 较好.
    with transaction(engine) as session, pytest.raises(GradingError) as refused:
        decide_grade(
            session,
            round_id=round_id,
            org_id=ids[2],
            person_id=first,
            now=NOW,
            grade=Grade.GOOD,
            reason="群众公认",
        )
    assert refused.value.code == "violations"
    assert refused.value.params["kinds"] == ["too_many_good"]
    with transaction(engine) as session:
        request_exception(
            session,
            round_id=round_id,
            org_id=ids[2],
            grade=Grade.GOOD,
            reason="全年无信访，群众公认",
            person_id=first,
            now=NOW,
        )
    with transaction(engine) as session, pytest.raises(DecisionError) as same:
        confirm_exception(session, round_id=round_id, org_id=ids[2], person_id=first, now=NOW)
    assert same.value.code == "same_person"
    with transaction(engine) as session:
        grade, reason, _ = confirm_exception(
            session, round_id=round_id, org_id=ids[2], person_id=second, now=NOW
        )
        decide_grade(
            session,
            round_id=round_id,
            org_id=ids[2],
            person_id=second,
            now=NOW,
            grade=grade,
            reason=reason,
        )
    # A fourth 好 is another distribution: the first exception does not cover it.
    with transaction(engine) as session, pytest.raises(GradingError) as again:
        decide_grade(
            session,
            round_id=round_id,
            org_id=ids[3],
            person_id=first,
            now=NOW,
            grade=Grade.GOOD,
            reason="群众公认",
        )
    assert again.value.code == "violations"
    with Session(engine) as session:
        decision = session.get(GradeDecision, (round_id, ids[2]))
        assert decision is not None and decision.final_grade == "good" and decision.locked
        assert session.exec(select(DecisionExceptionRow)).one().confirmed_by == second


def test_a_vetoed_branch_cannot_be_decided_good_without_an_exception(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, ids = _graded_township(session, THIRTEEN)
        record_veto(
            session,
            round_id=round_id,
            org_id=ids[0],
            condition="违纪违法党员",
            note=None,
            person_id=None,
            now=NOW,
        )
    with transaction(engine) as session:
        found = preview(session, round_id=round_id, org_id=ids[0], grade=Grade.GOOD, now=NOW)
    assert "good_despite_veto" in [v.kind.value for v in found.open]
    with transaction(engine) as session, pytest.raises(GradingError) as refused:
        decide_grade(
            session,
            round_id=round_id,
            org_id=ids[0],
            person_id=None,
            now=NOW,
            grade=Grade.GOOD,
            reason="高分",
        )
    assert refused.value.code == "violations"


def test_no_decision_while_the_pool_is_incomplete(engine: Engine) -> None:
    with transaction(engine) as session:
        round_id, ids = _graded_township(session, THIRTEEN)
        town = session.get(Organization, session.get(Organization, ids[0]).parent_id)  # type: ignore[union-attr]
        late = add_org(session, "未齐村党支部", parent_id=town.id, members=1)  # type: ignore[union-attr]
        round_ = session.get(Round, round_id)
        assert round_ is not None
        cast_ballot(session, round_, late, "satisfied")  # in the round, but parts missing
    with transaction(engine) as session, pytest.raises(GradingError) as refused:
        decide_grade(session, round_id=round_id, org_id=ids[0], person_id=None, now=NOW)
    assert refused.value.params["kinds"] == ["pool_incomplete"]
