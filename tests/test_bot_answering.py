"""Stories of people answering their surveys in Telegram, end to end.

The real Application runs over HTTP against the fake Bot API and the test database (SQLite
or PostgreSQL). People are bound to their Telegram accounts directly in the database, so
every story starts right after registration.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, MetaData
from sqlalchemy import select as sa_select
from sqlmodel import Session, select

from bot.app import build_application
from bot.callbacks import Action, encode_answer, encode_start
from storage.ballots import fold_due
from storage.db import make_engine, transaction
from storage.models import (
    Answer,
    AuditLog,
    Draft,
    Response,
    RoundPhase,
    SatisfactionBallots,
    SatisfactionComments,
    TelegramAccount,
)
from storage.rounds import close_round
from surveys.i18n import t
from tests.fakebot import FakeBotApi, running_bot

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness, FakeClock, World


from tests.support_answering import (
    FORGED,
    MEMBER,
    PHASE_OVER,
    SECRETARY,
    STALE,
    assignment_of,
    bind,
    callback_data_of,
    draft_of,
    keyboards,
    registered,
    start_survey,
    tally,
)

# --- The satisfaction survey ----------------------------------------------------------------


async def test_a_member_answers_the_whole_survey_and_nothing_ties_them_to_their_choices(
    bot: BotHarness,
) -> None:
    phone = await registered(bot, "member", MEMBER)
    todo = await phone.send("/surveys")
    assert "已答 0/9" in todo.text
    assert "2026年03月16日 09:00" in todo.text  # 14 days after 09:00 Shanghai, in Shanghai time

    first = await phone.tap(phone.buttons[0])
    assert "不记名" in first.text  # the anonymity notice comes before question 1
    assert "满意度测评 · 红星村 · 第 1/9 题" in first.text
    assert first.edits and not first.messages  # edited in place, no new message
    assert phone.buttons == ["满意", "基本满意", "不满意"]

    await phone.tap("满意")  # q1
    await phone.tap("基本满意")  # q2
    back = await phone.tap("⬅️ 上一题")
    assert "第 2/9 题" in back.text and "当前回答：基本满意" in back.text
    assert "✅ 基本满意" in phone.buttons
    await phone.tap("满意")  # q2 changed on the way forward again
    for choice in ("不满意", "满意", "满意", "较好", "部分了解", "偶尔参加"):  # q3–q8
        await phone.tap(choice)
    assert "第 9/9 题" in phone.screen.text
    assert "跳过 ➡️" in phone.buttons  # q9 is optional
    review = await phone.send("希望多组织学习活动")
    assert "请核对您的回答" in review.text
    assert "1. 领导班子好：满意" in review.text
    assert "3. 工作机制好：不满意" in review.text

    picker = await phone.tap("✏️ 修改某一题")
    assert phone.buttons[2] == "3. 工作机制好", picker.text
    changed = await phone.tap("3. 工作机制好")
    assert "第 3/9 题" in changed.text and "↩️ 返回核对" in phone.buttons
    back_to_review = await phone.tap("基本满意")
    assert "3. 工作机制好：基本满意" in back_to_review.text  # straight back to the review

    confirm = await phone.tap("📨 提交")
    assert phone.buttons == ["✅ 确认提交", "✏️ 返回修改"], confirm.text
    thanks = await phone.tap("✅ 确认提交")
    assert "提交成功" in thanks.text and "当场统计公布" in thanks.text

    assignment = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    assert assignment.status == "submitted"
    assert assignment.submitted_at is None  # not even the time is kept
    assert draft_of(bot.engine, assignment.id) is None  # type: ignore[arg-type]
    assert tally(bot.engine, "q1") == {}  # in the sealed box until the phase ends
    fold_due(bot.engine, now=PHASE_OVER)
    assert tally(bot.engine, "q1") == {"satisfied": 1}
    assert tally(bot.engine, "q3") == {"basically_satisfied": 1}
    assert tally(bot.engine, "q7") == {"partly_aware": 1}
    with Session(bot.engine) as session:
        ballots = session.exec(select(SatisfactionBallots)).one()
        assert ballots.ballots == 1
        comments = session.exec(select(SatisfactionComments)).one()
        assert comments.comments == ["希望多组织学习活动"]
        assert session.exec(select(Response)).all() == []
        assert session.exec(select(Answer)).all() == []
    assert_no_row_links_person_to_choices(
        bot.engine,
        person_id=bot.world.people["member"],
        assignment_id=assignment.id,  # type: ignore[arg-type]
        secrets=["satisfied", "basically_satisfied", "partly_aware", "希望多组织学习活动"],
    )


def assert_no_row_links_person_to_choices(
    engine: Engine, *, person_id: int, assignment_id: int, secrets: list[str]
) -> None:
    """No row that names the person (or their assignment) holds any of their answers."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            person_columns = [c.name for c in table.columns if c.name.endswith("person_id")]
            columns = [c.name for c in table.columns]
            for row in connection.execute(sa_select(table)).mappings():
                mentions_person = any(row[name] == person_id for name in person_columns) or (
                    "assignment_id" in columns and row["assignment_id"] == assignment_id
                )
                if table.name == "assignment" and row["id"] == assignment_id:
                    mentions_person = True
                if not mentions_person:
                    continue
                flat = " ".join(str(value) for value in row.values())
                for secret in secrets:
                    assert secret not in flat, f"{table.name} row {dict(row)} holds {secret!r}"


async def test_after_a_restart_the_member_continues_at_the_same_question(
    engine: Engine, clock: FakeClock, world: World
) -> None:
    bind(engine, world, "member", MEMBER)
    async with FakeBotApi() as api:
        from tests.bot_fixtures import bot_settings

        settings = bot_settings(api)

        def build() -> Any:
            return build_application(
                settings,
                engine,
                clock=clock,
                base_url=api.base_url,
                base_file_url=api.base_file_url,
            )

        phone = api.user(MEMBER)
        async with running_bot(build(), api):
            await start_survey(phone)
            for choice in ("满意", "满意", "基本满意"):
                await phone.tap(choice)
            assert "第 4/9 题" in phone.screen.text
        # The first Application is gone; a new one starts on the same database.
        async with running_bot(build(), api):
            reply = await phone.tap("不满意")  # the button on the message from before
            assert "第 5/9 题" in reply.text
            assert reply.edits and not reply.messages
    assignment = assignment_of(engine, world, "member", "satisfaction")
    draft = draft_of(engine, assignment.id)  # type: ignore[arg-type]
    assert draft is not None
    assert set(draft.answers) == {"q1", "q2", "q3", "q4"}
    assert draft.answers["q4"] == {"choice": "dissatisfied"}


# --- Buttons that must not count --------------------------------------------------------------


async def test_a_forged_tap_on_someone_elses_survey_changes_nothing_and_is_audited(
    bot: BotHarness,
) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    other = assignment_of(bot.engine, bot.world, "member2", "satisfaction")
    assert other.id is not None

    for data in (encode_answer(other.id, 0, 0, Action.CHOOSE, 0), encode_start(other.id)):
        reply = await phone.tap(callback_data=data)
        assert reply.alert == FORGED
    assert draft_of(bot.engine, other.id) is None
    with Session(bot.engine) as session:
        audits = session.exec(select(AuditLog).where(AuditLog.outcome == "refused")).all()
    assert len(audits) == 2
    assert all(row.actor_telegram_id == MEMBER for row in audits)


async def test_garbage_callback_data_gets_a_polite_alert(bot: BotHarness) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    mine = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    before = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert before is not None
    current = before.revision
    for data in (
        "a:zzz",
        f"a:{mine.id}:{current}:0:c:7",  # no option 8 on question 1
        f"a:{mine.id}:{current}:0:p:5",  # points on a choice question
        f"a:{mine.id}:{current}:0:b",  # no question before the first
        "s:0",
    ):
        reply = await phone.tap(callback_data=data)
        assert reply.alert == FORGED, data
    after = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert after is not None
    assert (after.revision, after.answers) == (before.revision, {})


async def test_a_double_tap_stores_once(bot: BotHarness) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    mine = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    start = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert start is not None
    message_id, data = callback_data_of(phone, "满意")

    first, second = await asyncio.gather(
        phone.tap(callback_data=data, message_id=message_id),
        phone.tap(callback_data=data, message_id=message_id),
    )
    toasts = sorted(str(reply.toast) for reply in (first, second))
    assert toasts.count(STALE) == 1  # one of the two taps counted, the other was refused
    draft = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert draft is not None
    assert draft.answers == {"q1": {"choice": "satisfied"}}
    assert draft.revision == start.revision + 1
    assert draft.position == 1
    assert "第 2/9 题" in phone.screen.text


async def test_a_button_from_an_old_message_is_refused_and_the_current_question_shown(
    bot: BotHarness,
) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    old_message, old_data = callback_data_of(phone, "不满意")
    await phone.tap("满意")
    await phone.tap("满意")
    # Text that is no option: the question comes again as a new message, without the intro.
    nudge = await phone.send("还行吧")
    assert t("answering.hint.choice_typed", count=3) in nudge.text
    assert "不记名" not in nudge.text
    assert nudge.messages and "第 3/9 题" in nudge.text
    assert phone.buttons[:3] == ["满意", "基本满意", "不满意"]  # the buttons are kept
    mine = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    draft = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert draft is not None and draft.message_id == nudge.messages[0]["message_id"]
    assert keyboards(phone) == [False, True]  # only the newest message keeps its buttons

    stale = await phone.tap(callback_data=old_data, message_id=old_message)
    assert stale.toast == STALE
    assert "第 3/9 题" in stale.text  # the current question is shown again
    after = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert after is not None
    assert after.answers == {"q1": {"choice": "satisfied"}, "q2": {"choice": "satisfied"}}
    assert keyboards(phone) == [False, False, True]
    # The re-shown question works.
    reply = await phone.tap("基本满意")
    assert "第 4/9 题" in reply.text


# --- Typed answers ------------------------------------------------------------------------


async def test_a_member_may_type_an_options_number_or_its_words(bot: BotHarness) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    by_number = await phone.send("1")
    assert "第 2/9 题" in by_number.text
    by_words = await phone.send("基本满意。")
    assert "第 3/9 题" in by_words.text
    assert t("answering.use_buttons") not in by_words.text and "不记名" not in by_words.text
    mine = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    draft = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert draft is not None
    assert draft.answers == {"q1": {"choice": "satisfied"}, "q2": {"choice": "basically_satisfied"}}
    out_of_range = await phone.send("4")
    assert "1 到 3" in out_of_range.text and "第 3/9 题" in out_of_range.text


async def test_an_over_long_suggestion_is_refused_with_the_limit(bot: BotHarness) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    for choice in ("满意", "满意", "满意", "满意", "满意", "好", "了解", "经常参加"):
        await phone.tap(choice)
    reply = await phone.send("很" * 501)
    assert "最多 500 字" in reply.text and "501" in reply.text
    assert "第 9/9 题" in reply.text  # asked again
    mine = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    draft = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert draft is not None and "q9" not in draft.answers
    skipped = await phone.tap("跳过 ➡️")
    assert "9. 意见建议：（未填）" in skipped.text


async def test_a_committee_member_scores_the_self_evaluation_with_typed_points(
    bot: BotHarness,
) -> None:
    phone = await registered(bot, "secretary", SECRETARY)
    first = await phone.send("/surveys")
    assert "支部自评" in first.text and "满意度" in first.text
    await phone.tap(next(b for b in phone.buttons if "支部自评" in b))
    assert "第 1/7 项" in phone.screen.text and "当前得分 0/100" in phone.screen.text

    too_much = await phone.send("25")
    assert "0 到 20" in too_much.text
    not_number = await phone.send("很好")
    assert "请发送一个数字" in not_number.text
    off_step = await phone.send("17.3")
    assert "0.5" in off_step.text
    mine = assignment_of(bot.engine, bot.world, "secretary", "self_evaluation")
    draft = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert draft is not None and draft.answers == {}  # nothing stored by the three errors

    # leader 20, work_ideas 10, work_system 15, venue 10, support 10, performance 20, masses 15
    await phone.send("18.5")  # typed, full-width digits and 分 work too
    await phone.tap("9")
    await phone.send("１３．５")
    await phone.send("8分")
    await phone.tap("10")
    await phone.tap("17")
    review = await phone.tap("12")
    # 18.5 + 9 + 13.5 + 8 + 10 + 17 + 12 = 88
    assert "当前得分 88/100" in review.text
    await phone.tap("📨 提交")
    thanks = await phone.tap("✅ 确认提交")
    assert "总分 88 分" in thanks.text
    with Session(bot.engine) as session:
        response = session.exec(select(Response)).one()
        assert response.total == Decimal("88")
        assert response.person_id == bot.world.people["secretary"]
        assert response.submitted_at == bot.clock.now


# --- Windows and finality ---------------------------------------------------------------------


async def test_past_the_deadline_nothing_is_stored_and_the_deadline_is_shown(
    bot: BotHarness,
) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    await phone.tap("满意")
    bot.clock.advance(days=15)
    reply = await phone.tap("满意")
    assert reply.alert is not None and "2026年03月16日 09:00" in reply.alert
    mine = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    draft = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert draft is not None and draft.answers == {"q1": {"choice": "satisfied"}}
    typed = await phone.send("好")
    assert "截止" in typed.text


async def test_a_closed_round_takes_no_answers(bot: BotHarness) -> None:
    phone = await registered(bot, "member", MEMBER)
    await phone.send("/surveys")
    with transaction(bot.engine) as session:
        close_round(session, round_id=bot.world.round_id, now=bot.clock.now)
    reply = await phone.tap(phone.buttons[0])
    assert reply.alert == t("answering.window.round_closed")
    mine = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    assert draft_of(bot.engine, mine.id) is None  # type: ignore[arg-type]
    assert mine.status == "pending"


async def test_a_second_attempt_after_submitting_is_told_it_is_done(bot: BotHarness) -> None:
    phone = await registered(bot, "member", MEMBER)
    await phone.send("/surveys")
    old_list_message, start_data = callback_data_of(phone, phone.buttons[0])
    await phone.tap(phone.buttons[0])
    for choice in ("满意", "满意", "满意", "满意", "满意", "好", "了解", "经常参加"):
        await phone.tap(choice)
    await phone.tap("跳过 ➡️")
    await phone.tap("📨 提交")
    await phone.tap("✅ 确认提交")

    again = await phone.tap(callback_data=start_data, message_id=old_list_message)
    assert again.alert == t("answering.already_submitted")
    todo = await phone.send("/surveys")
    # What was done stays visible (issue 14), not just "nothing to do".
    assert todo.text == t("answering.todo.nothing") + "\n满意度测评 · 红星村：已提交 ✅"
    fold_due(bot.engine, now=PHASE_OVER)
    with Session(bot.engine) as session:
        assert session.exec(select(SatisfactionBallots)).one().ballots == 1


# --- Two bot processes --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def two_bots(
    database_url: str, clock: FakeClock
) -> AsyncIterator[tuple[FakeBotApi, Any, Any]]:
    """Two Applications, each with its own engine (as two processes would), one Bot API."""
    from tests.bot_fixtures import bot_settings

    engines = [make_engine(database_url), make_engine(database_url)]
    try:
        async with FakeBotApi() as api:
            settings = bot_settings(api)
            apps = [
                build_application(
                    settings, e, clock=clock, base_url=api.base_url, base_file_url=api.base_file_url
                )
                for e in engines
            ]
            async with (
                running_bot(apps[0], api, polling=False),
                running_bot(apps[1], api, polling=False),
            ):
                yield api, apps[0], apps[1]
    finally:
        for e in engines:
            e.dispose()


async def test_two_bot_processes_answering_one_person_alternately_stay_consistent(
    engine: Engine, database_url: str, clock: FakeClock, world: World
) -> None:
    bind(engine, world, "member", MEMBER)
    async with two_bots(database_url, clock) as (api, first, second):
        phone = api.user(MEMBER)
        await phone.send("/surveys", via=first)
        await phone.tap(phone.buttons[0], via=second)
        choices = ("满意", "基本满意", "满意", "不满意", "满意", "一般", "了解", "未参加")
        for number, choice in enumerate(choices):
            via = first if number % 2 == 0 else second
            reply = await phone.tap(choice, via=via)
            assert reply.toast is None, (number, reply.toast)
        # A double tap split across the two processes counts once.
        message_id, data = callback_data_of(phone, "跳过 ➡️")
        await asyncio.gather(
            phone.tap(callback_data=data, message_id=message_id, via=first),
            phone.tap(callback_data=data, message_id=message_id, via=second),
        )
        assert "请核对您的回答" in phone.screen.text
        await phone.tap("📨 提交", via=first)
        confirm_message, confirm = callback_data_of(phone, "✅ 确认提交")
        await asyncio.gather(
            phone.tap(callback_data=confirm, message_id=confirm_message, via=first),
            phone.tap(callback_data=confirm, message_id=confirm_message, via=second),
        )
    assignment = assignment_of(engine, world, "member", "satisfaction")
    assert assignment.status == "submitted"
    fold_due(engine, now=PHASE_OVER)
    assert tally(engine, "q1") == {"satisfied": 1}
    assert tally(engine, "q8") == {"never": 1}
    with Session(engine) as session:
        assert session.exec(select(SatisfactionBallots)).one().ballots == 1
        assert session.get(Draft, assignment.id) is None


async def test_before_the_phase_opens_the_list_says_when_and_nothing_can_be_started(
    bot: BotHarness,
) -> None:
    with transaction(bot.engine) as session:
        phase = session.get(RoundPhase, (bot.world.round_id, "satisfaction"))
        assert phase is not None
        phase.opens_at = bot.clock.now + timedelta(days=2)  # 2026-03-04 09:00 in Shanghai
        session.add(phase)
    phone = await registered(bot, "member", MEMBER)
    todo = await phone.send("/surveys")
    assert "尚未开始，2026年03月04日 09:00 开放" in todo.text
    assert phone.buttons == []
    mine = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    early = await phone.tap(callback_data=encode_start(mine.id))  # type: ignore[arg-type]
    assert early.alert is not None and "2026年03月04日 09:00" in early.alert
    assert draft_of(bot.engine, mine.id) is None  # type: ignore[arg-type]


async def test_someone_not_registered_is_told_how_to_register(bot: BotHarness) -> None:
    phone = bot.phone(4242)
    reply = await phone.send("/surveys")
    assert reply.text == t("answering.not_registered")
    typed = await phone.send("满意")
    assert typed.text == t("answering.not_registered")


async def test_a_member_who_chose_english_answers_in_english(bot: BotHarness) -> None:
    bind(bot.engine, bot.world, "member", MEMBER)
    with transaction(bot.engine) as session:
        account = session.exec(
            select(TelegramAccount).where(TelegramAccount.telegram_user_id == MEMBER)
        ).one()
        account.language = "en"
        session.add(account)
    phone = bot.phone(MEMBER)
    todo = await phone.send("/surveys")
    assert "0 of 9 answered" in todo.text and "deadline 2026-03-16 09:00" in todo.text
    first = await phone.tap(phone.buttons[0])
    assert "anonymous" in first.text and "question 1 of 9" in first.text
    assert phone.buttons == ["Satisfied", "Mostly satisfied", "Dissatisfied"]


async def test_resuming_from_a_new_list_continues_and_retires_the_old_message(
    bot: BotHarness,
) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    await phone.tap("满意")
    await phone.tap("不满意")
    todo = await phone.send("/surveys")
    assert "已答 2/9" in todo.text
    resumed = await phone.tap("▶️ 继续：满意度测评 · 红星村")
    assert "不记名" not in resumed.text  # the intro opened the survey once, not on resuming
    assert "第 3/9 题" in resumed.text
    assert keyboards(phone) == [False, True]  # the first survey message lost its buttons


async def test_data_no_module_knows_is_refused_by_the_fallback_and_audited(
    bot: BotHarness,
) -> None:
    phone = await registered(bot, "member", MEMBER)
    await phone.send("/surveys")
    reply = await phone.tap(callback_data="something-else")
    assert reply.alert == FORGED
    with Session(bot.engine) as session:
        row = session.exec(select(AuditLog)).one()
    assert (row.action, row.outcome, row.actor_telegram_id) == (
        "answer.callback",
        "refused",
        MEMBER,
    )
