"""What the planner (jobs.planner) enqueues for whom, on a township and by category."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from jobs.runner import enqueue_due, enqueue_manual
from storage import summary
from storage.db import transaction
from storage.models import (
    Round,
    SatisfactionBallots,
    SatisfactionTally,
    TelegramAccount,
)
from tests.factories import (
    ZONE,
    add_open_round,
    add_org,
    add_person,
    assign,
    build_reminder_township,
    local,
    mark_submitted,
    outbox_rows,
    per_chat,
    run_planner,
    same_deadline,
    texts_for,
)

# --- The planner on a township ----------------------------------------------------------------

OPENED = local(2027, 3, 15, 9)
DEADLINE = local(2027, 3, 20, 20)


def test_each_offset_reminds_each_person_once(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    run_planner(engine, OPENED, DEADLINE + timedelta(hours=1), timedelta(minutes=30))

    reminders = outbox_rows(engine, "reminder")
    # Everyone registered who owes a survey, three times; 党员丙 never registered.
    owing = ["李书记", "党员甲", "党员乙", "代表丁", "赵书记", "党员戊"]
    assert per_chat(reminders) == {town.chat_of(name): 3 for name in owing}
    assert {r.slot for r in reminders} == {
        "20270320T1200Z-72h",
        "20270320T1200Z-24h",
        "20270320T1200Z-3h",
    }
    assert sorted({r.created_at for r in reminders}) == [
        local(2027, 3, 17, 20),
        local(2027, 3, 19, 20),
        local(2027, 3, 20, 17),
    ]
    assert all(r.expires_at is not None and r.expires_at <= DEADLINE for r in reminders)
    secretaries = outbox_rows(engine, "secretary_reminder")
    assert per_chat(secretaries) == {town.chat_of("李书记"): 3, town.chat_of("赵书记"): 3}


def test_the_reminder_button_resumes_the_survey_where_it_was_left(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    enqueue_due(engine, now=local(2027, 3, 17, 20), zone=ZONE)
    (row,) = [r for r in outbox_rows(engine, "reminder") if r.chat_id == town.chat_of("李书记")]
    buttons = [b for line in row.payload["reply_markup"]["inline_keyboard"] for b in line]
    assert [b["callback_data"] for b in buttons] == [
        f"s:{town.assignments[('李书记', 'satisfaction')]}",
        f"s:{town.assignments[('李书记', 'self_evaluation')]}",
    ]
    assert "东村党支部" in buttons[0]["text"]
    assert "2份测评未完成" in row.payload["text"]
    assert "2027年03月20日 20:00" in row.payload["text"]


def test_a_person_who_submits_gets_no_more_nudges(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    enqueue_due(engine, now=local(2027, 3, 17, 20), zone=ZONE)
    mark_submitted(engine, town, "党员甲")
    mark_submitted(engine, town, "李书记", "satisfaction")
    enqueue_due(engine, now=local(2027, 3, 19, 20), zone=ZONE)

    second = [r for r in outbox_rows(engine, "reminder") if r.slot.endswith("-24h")]
    assert town.chat_of("党员甲") not in per_chat(second)
    (secretary,) = [r for r in second if r.chat_id == town.chat_of("李书记")]
    # Still owes the self-evaluation, and only that.
    assert [
        b[0]["callback_data"] for b in secretary.payload["reply_markup"]["inline_keyboard"]
    ] == [f"s:{town.assignments[('李书记', 'self_evaluation')]}"]


def test_the_secretary_sees_participation_what_is_missing_and_who(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    mark_submitted(engine, town, "党员甲")
    enqueue_due(engine, now=local(2027, 3, 19, 20), zone=ZONE)
    (text,) = texts_for(engine, town.chat_of("李书记"), "secretary_reminder")
    # 5 members on the roster → 80% is 4; one answered → 3 more. 5 representatives → 4, none
    # answered. One committee member → 1. The gap is participation's (members and masses,
    # docs/rules.md §6), as /coverage counts it (issue 14): 3 + 4 = 7 more.
    assert "党员：已参评1/5人（20%），目标4人，还差3人" in text
    assert "群众：已参评0/5人（0%），目标4人，还差4人" in text
    assert "班子成员（自评）：已参评0/1人（0%），目标1人，还差1人" in text
    assert "距离目标还差7人" in text
    assert "尚未参评（4人）" in text
    assert "党员丙" in text and "未注册" not in text and "未登记" not in text  # no internal notes
    assert "党员甲" not in text  # who answered is not listed
    assert "约24小时" in text
    # Phases by the names people know, only those the branch's own people answer (issue 14).
    assert "】满意度测评、支部自评将于" in text and "观摩检查" not in text


def test_a_secretary_whose_branch_met_its_target_gets_no_deadline_reminder(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    mark_submitted(engine, town, "赵书记")
    mark_submitted(engine, town, "党员戊")
    enqueue_due(engine, now=local(2027, 3, 19, 20), zone=ZONE)
    assert texts_for(engine, town.chat_of("赵书记"), "secretary_reminder") == []
    assert texts_for(engine, town.chat_of("李书记"), "secretary_reminder") != []


def test_target_reached_is_told_once(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    mark_submitted(engine, town, "赵书记")
    run_planner(engine, local(2027, 3, 16, 10), local(2027, 3, 16, 11), timedelta(minutes=1))
    assert outbox_rows(engine, "target_reached") == []
    mark_submitted(engine, town, "党员戊")
    run_planner(engine, local(2027, 3, 16, 12), local(2027, 3, 16, 14), timedelta(minutes=1))
    (row,) = outbox_rows(engine, "target_reached")
    assert row.chat_id == town.chat_of("赵书记")
    assert "西村党支部" in row.payload["text"]
    assert "党员：已参评2/2人（100%），已达到目标2人" in row.payload["text"]


def test_target_reached_waits_for_the_end_of_quiet_hours(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    mark_submitted(engine, town, "赵书记")
    mark_submitted(engine, town, "党员戊")
    enqueue_due(engine, now=local(2027, 3, 16, 23), zone=ZONE)
    assert outbox_rows(engine, "target_reached") == []
    enqueue_due(engine, now=local(2027, 3, 17, 8), zone=ZONE)
    assert per_chat(outbox_rows(engine, "target_reached")) == {town.chat_of("赵书记"): 1}


def test_the_organizer_table_puts_the_furthest_behind_first(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    enqueue_due(engine, now=local(2027, 3, 16, 18), zone=ZONE)
    (text,) = texts_for(engine, town.chat_of("王组织"), "organizer_digest")
    lines = text.splitlines()
    # 东村 needs 4 + 4 = 8 (the one gap: members and masses, issue 14), 西村 2: 东村 first.
    # 党员丙 never registered: unreachable.
    assert lines[1] == "1. 东村党支部：还差8人（党员0/5、群众0/5），1人无法通过机器人联系"
    assert lines[2] == "2. 西村党支部：还差2人（党员0/2）"


def test_manual_reminders_wait_for_the_end_of_quiet_hours_unless_forced(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    night = local(2027, 3, 16, 23)
    held = enqueue_manual(engine, now=night, zone=ZONE)
    assert held.count == 8  # six people and two secretaries
    assert held.first_send_at == local(2027, 3, 17, 8)
    assert enqueue_manual(engine, now=night, zone=ZONE).count == 0  # the same minute: once
    forced = enqueue_manual(engine, now=night + timedelta(minutes=1), zone=ZONE, force=True)
    assert forced.first_send_at == night + timedelta(minutes=1)
    forced_rows = [r for r in outbox_rows(engine) if r.not_before == forced.first_send_at]
    assert len(forced_rows) == forced.count == 8
    assert all("quiet_hours" not in r.payload for r in forced_rows)
    assert town.chat_of("王组织") not in per_chat(outbox_rows(engine))


# --- Digest numbers by category ---------------------------------------------------------------


def add_account(session: Session, person_id: int, chat: int, language: str | None = None) -> None:
    session.add(
        TelegramAccount(
            person_id=person_id,
            telegram_user_id=chat,
            chat_id=chat,
            bound_via="invitation",
            language=language,
        )
    )


def add_branch_with_answers(
    session: Session,
    round_: Round,
    name: str,
    category: str,
    *,
    chat: int,
    answered: dict[str, int],
    assigned: dict[str, int],
    **counts: object,
) -> None:
    """A branch with a secretary (English) and assigned/submitted satisfaction surveys."""
    org = add_org(session, name, category, **counts)
    secretary = add_person(session, f"{name}书记", org, "secretary", phone=f"1{chat:010d}")
    add_account(session, secretary.id, chat, "en")  # type: ignore[arg-type]
    for audience, total in assigned.items():
        for n in range(total):
            person = add_person(
                session,
                f"{name}{audience}{n}",
                org,
                "member",
                phone=f"1{chat:04d}{n:03d}{len(audience):03d}",
            )
            a = assign(session, round_, person, org, "satisfaction", audience)
            if n < answered.get(audience, 0):
                a.status = "submitted"
                session.add(a)


def test_interim_participation_matches_hand_counts_for_every_category(engine: Engine) -> None:
    with transaction(engine) as session:
        round_ = add_open_round(session, now=OPENED, days=5)
        round_.opened_at = OPENED
        # 村: 10 members → 8 needed; 11 representatives → ceil(8.8) = 9.
        add_branch_with_answers(
            session,
            round_,
            "village",
            "village",
            chat=301,
            members=10,
            representatives=11,
            assigned={"members": 7, "masses": 10},
            answered={"members": 6, "masses": 9},
        )
        # 社区: 4 members → ceil(3.2) = 4; 6 representatives → ceil(4.8) = 5.
        add_branch_with_answers(
            session,
            round_,
            "community",
            "community",
            chat=302,
            members=4,
            representatives=6,
            assigned={"members": 4, "masses": 5},
            answered={"members": 4, "masses": 2},
        )
        # 机关 with a workers' congress: 7 worker representatives → ceil(5.6) = 6 (staff ignored).
        add_branch_with_answers(
            session,
            round_,
            "institution",
            "institution",
            chat=303,
            members=3,
            representatives=7,
            staff=30,
            has_workers_congress=True,
            assigned={"members": 3, "masses": 7},
            answered={"members": 1, "masses": 6},
        )
        # 非公企业 without one: half of 9 staff → ceil(4.5) = 5.
        add_branch_with_answers(
            session,
            round_,
            "enterprise",
            "enterprise",
            chat=304,
            members=3,
            staff=9,
            assigned={"members": 3, "masses": 6},
            answered={"members": 3, "masses": 4},
        )
        # 社会组织 marked members-only: no masses target at all.
        add_branch_with_answers(
            session,
            round_,
            "social",
            "social",
            chat=305,
            members=5,
            members_only=True,
            members_only_reason="群众无法组织",
            assigned={"members": 5},
            answered={"members": 4},
        )
    enqueue_due(engine, now=local(2027, 3, 15, 18), zone=ZONE)

    def lines(chat: int) -> list[str]:
        (text,) = texts_for(engine, chat, "interim")
        return text.splitlines()[1:]

    assert lines(301)[:2] == [
        "Party members: 6/10 answered (60%); target 8, 2 more needed",
        "Public representatives: 9/11 answered (81.8%); target of 9 reached",
    ]
    assert lines(302)[:2] == [
        "Party members: 4/4 answered (100%); target of 4 reached",
        "Public representatives: 2/6 answered (33.3%); target 5, 3 more needed",
    ]
    assert lines(303)[:2] == [
        "Party members: 1/3 answered (33.3%); target 3, 2 more needed",
        "Public representatives: 6/7 answered (85.7%); target of 6 reached",
    ]
    assert lines(304)[:2] == [
        "Party members: 3/3 answered (100%); target of 3 reached",
        "Public representatives: 4/9 answered (44.4%); target 5, 1 more needed",
    ]
    social = lines(305)
    assert social[0] == "Party members: 4/5 answered (80%); target of 4 reached"
    assert not any(line.startswith("Public representatives") for line in social)


def add_ballots(
    session: Session, round_id: int, org_id: int, ballots: int, choices: dict[str, dict[str, int]]
) -> None:
    session.add(SatisfactionBallots(round_id=round_id, org_id=org_id, ballots=ballots))
    for item_id, options in choices.items():
        for option_id, count in options.items():
            session.add(
                SatisfactionTally(
                    round_id=round_id,
                    org_id=org_id,
                    item_id=item_id,
                    option_id=option_id,
                    count=count,
                )
            )
    session.flush()
    summary.rebuild(session, round_id=round_id)  # what a fold would have kept beside them


def test_the_three_rates_appear_only_from_five_ballots(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    five_goods = {"satisfied": 3, "basically_satisfied": 1, "dissatisfied": 1}
    with transaction(engine) as session:
        add_ballots(
            session,
            town.round_id,
            town.orgs["东村党支部"],
            5,
            {
                **{f"q{n}": five_goods for n in range(1, 6)},
                "q7": {"aware": 2, "partly_aware": 1, "unaware": 2},
                "q8": {"often": 1, "sometimes": 1, "never": 3},
            },
        )
        add_ballots(session, town.round_id, town.orgs["西村党支部"], 4, {"q1": {"satisfied": 4}})
    enqueue_due(engine, now=local(2027, 3, 16, 18), zone=ZONE)
    (east,) = texts_for(engine, town.chat_of("李书记"), "interim")
    # 满意率: 4 positive of 5 on each of q1–q5 = 20/25; 知晓率 3/5; 参与率 2/5.
    assert "满意度测评已收到5份：满意率80%，知晓率60%，参与率40%。" in east
    (west,) = texts_for(engine, town.chat_of("赵书记"), "interim")
    assert "满意度测评已收到4份；满5份后才显示满意率等结果。" in west
    assert "满意率" not in west.replace("满意率等结果", "")


def test_a_round_with_unreadable_options_does_not_stop_the_others(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    with transaction(engine) as session:
        broken = add_open_round(session, "试点轮次", now=OPENED)
        broken.options = {"quiet_hours": ["25:00", "08:00"]}
        session.add(broken)
    enqueue_due(engine, now=local(2027, 3, 17, 20), zone=ZONE)
    assert town.chat_of("党员乙") in per_chat(outbox_rows(engine, "reminder"))


def test_a_round_with_a_misspelt_target_does_not_stop_the_others(engine: Engine) -> None:
    town = build_reminder_township(engine, opened=OPENED, deadlines=same_deadline(DEADLINE))
    with transaction(engine) as session:
        broken = add_open_round(session, "试点轮次", now=OPENED)
        broken.options = {"targets": {"memebrs": "0.9"}}
        session.add(broken)
    enqueue_due(engine, now=local(2027, 3, 16, 18), zone=ZONE)
    assert texts_for(engine, town.chat_of("王组织"), "organizer_digest") != []


def test_a_deadline_beyond_two_days_is_counted_in_days() -> None:
    from jobs.digests import time_left

    assert time_left(timedelta(hours=232), "zh_CN") == "还有约10天"
    assert time_left(timedelta(hours=48), "zh_CN") == "还有约48小时"
    assert time_left(timedelta(minutes=80), "zh_CN") == "不到2小时"
    assert time_left(timedelta(hours=72), "en") == "about 3 days left"
