"""What each role meets on a phone, step by step, kept as reviewable transcripts (issue 14).

Each test drives the real Application against the fake Bot API through one role's whole
flow, asserts the issue's fixes on the exact screens, and writes every step — what the
person sent or tapped, then each message the bot sent or edited with its buttons — to
``tests/transcripts/<role>.txt``. The file is compared with the transcript of the run, so
any change to a text shows up in review as a diff of that file. To accept a change,
regenerate the files::

    CEPING_UPDATE_TRANSCRIPTS=1 .venv/bin/pytest tests/test_transcripts.py

The harness is tests/support_transcripts.py; the secretary's and the organizer's
transcripts are in their own modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from surveys.i18n import t
from surveys.instruments import get_instrument
from tests.fakebot.phone import message_text
from tests.support_answering import INSPECTOR, MEMBER, SECRETARY, registered
from tests.support_transcripts import SHARE_PHONE, Transcript

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness

pytest_plugins = ["tests.bot_fixtures"]

# --- Members ----------------------------------------------------------------------------------


async def test_member(bot: BotHarness) -> None:
    """An elderly member: types numbers and words, changes an answer, sees what is done."""
    talk = Transcript("member", await registered(bot, "member", MEMBER))
    todo = await talk.send("/surveys")
    assert talk.phone.buttons == ["▶️ 开始：满意度测评 · 红星村"]  # short, nothing cut
    assert "满意度测评 · 红星村" in todo.text

    first = await talk.tap("▶️ 开始：满意度测评 · 红星村")
    assert "不记名" in first.text  # the intro, once
    header = "满意度测评 · 红星村 · 第 1/9 题\n测评要点：领导班子好\n"
    assert header in first.text  # one header line; the aspect labelled

    await talk.send("1")  # the option's number
    screen = talk.phone.screen.text
    assert "第 2/9 题" in screen and "不记名" not in screen
    await talk.send("满意")  # the option's exact text
    assert "第 3/9 题" in talk.phone.screen.text
    await talk.send("还行吧")
    screen = talk.phone.screen.text
    assert screen.startswith(t("answering.hint.choice_typed", count=3))
    assert "不记名" not in screen  # never the intro again
    for choice in ("基本满意", "满意", "满意", "较好", "了解", "经常参加"):
        await talk.tap(choice)
    kept = await talk.send("/cancel")
    assert kept.text == t("answering.cancel.kept")
    await talk.send("/surveys")
    await talk.tap("▶️ 继续：满意度测评 · 红星村")
    review = await talk.tap("跳过 ➡️")
    assert "6. 总体评价：较好" in review.text and "？：" not in review.text
    assert talk.phone.screen.keyboard == [["📨 提交"], ["✏️ 修改某一题"]]
    picker = await talk.tap("✏️ 修改某一题")
    assert picker.edits and not picker.messages  # the review message turns into the picker
    assert talk.phone.screen.keyboard[5:8] == [["6. 总体评价"], ["7. 知晓情况"], ["8. 参与情况"]]
    await talk.tap("6. 总体评价")
    changed = await talk.tap("好")
    assert "6. 总体评价：好" in changed.text
    await talk.tap("📨 提交")
    await talk.tap("✅ 确认提交")
    done = await talk.send("/surveys")
    assert done.text == "目前没有需要您填写的测评。\n满意度测评 · 红星村：已提交 ✅"
    idle = await talk.send("/cancel")
    assert idle.text.startswith("当前没有进行中的操作")
    talk.check()


# --- Someone not registered -------------------------------------------------------------------


async def test_unregistered_person(bot: BotHarness) -> None:
    """Whatever an unregistered person does, the phone button is on screen; then they register."""
    talk = Transcript("unregistered", bot.phone(3, name="张党员"))  # 13800000003 is on the roster
    for step in ("你好", "/surveys", "/start nosuchlink", "/tally", "/nosuchcommand", "/start"):
        reply = await talk.send(step)
        assert reply.text, step
        # This very reply brings the phone button (not one left from an earlier message).
        assert talk.blocks[-1].endswith(f"⌨ [{SHARE_PHONE}]"), (step, reply.texts)
    bound = await talk.share_phone()
    assert bound.texts[0].startswith("张党员同志，您好！登记成功。")
    assert talk.phone.reply_keyboard is None  # registered: the phone button is gone
    talk.check()


# --- Committee members ------------------------------------------------------------------------


async def test_committee_member(bot: BotHarness) -> None:
    """A committee member scores the self-evaluation with taps and typed points."""
    talk = Transcript("committee", await registered(bot, "secretary", SECRETARY))
    todo = await talk.send("/surveys")
    assert "▶️ 开始：支部自评 · 红星村" in talk.phone.buttons, todo.texts
    first = await talk.tap("▶️ 开始：支部自评 · 红星村")
    assert "支部自评 · 红星村 · 第 1/7 项" in first.text
    await talk.send("18.5")
    wrong = await talk.send("很好")
    assert t("answering.error.not_a_number") in wrong.text
    for points in ("9", "13", "8", "10", "17", "13"):
        await talk.tap(points)
    review = talk.phone.screen
    assert review.keyboard == [["📨 提交"], ["✏️ 修改某一项"]]
    assert "1. 党组织带头人：18.5 分" in review.text
    await talk.tap("✏️ 修改某一项")
    await talk.tap("2. 工作思路")
    await talk.tap("10")
    await talk.tap("📨 提交")
    thanks = await talk.tap("✅ 确认提交")
    assert "总分 89.5 分" in thanks.text
    talk.check()


# --- Inspectors -------------------------------------------------------------------------------


async def test_inspector(bot: BotHarness) -> None:
    """An inspector deducts twice, skips the rest of each section and reads out the deductions."""
    talk = Transcript("inspector", await registered(bot, "inspector", INSPECTOR))
    await talk.send("/surveys")
    await talk.tap("📋 选择支部：观摩检查评分")
    first = await talk.tap("红星村（未开始）")
    assert "观摩检查评分 · 红星村 · 第 1/37 项（党建基础）" in first.text
    assert "⏭️ 本部分其余各项均不扣分" in talk.phone.buttons
    typed = await talk.send("服务项目未公示")  # a reason before any amount
    assert typed.text.startswith(t("answering.hint.deduct_first"))
    asked = await talk.tap("➖ 扣分")
    assert "0.5 到 3 分" in asked.text
    too_much = await talk.send("4")
    assert "0.5 到 3 分" in too_much.text  # the same range as the prompt
    await talk.tap("1")
    await talk.send("服务项目未公示")
    sheet = get_instrument("inspection_village")
    for section in sheet.sections:
        if section is sheet.sections[1]:  # one more deduction in the second section
            await talk.tap("➖ 扣分")
            await talk.tap("2")
            await talk.send("“三会一课”记录不全")
        await talk.tap("⏭️ 本部分其余各项均不扣分")
    review = talk.phone.screen.text
    assert "其余 35 项不扣分" in review and "题" not in review
    assert talk.phone.screen.keyboard == [["📨 提交"], ["✏️ 修改某一项"]]
    await talk.tap("📨 提交")
    thanks = await talk.tap("✅ 确认提交")
    assert "本次扣分项（可现场反馈）：\n第1项（党建基础）：扣 1 分（服务项目未公示）" in thanks.text
    talk.check()


# --- English ----------------------------------------------------------------------------------


async def test_english_user(bot: BotHarness) -> None:
    """A member whose Telegram is in English answers the survey in English."""
    await registered(bot, "member2", 1004)
    talk = Transcript("english", bot.phone(1004, language_code="en", name="Zhao"))
    todo = await talk.send("/surveys")
    assert talk.phone.buttons == ["▶️ Start: Satisfaction survey · 红星村"], todo.texts
    first = await talk.tap("▶️ Start: Satisfaction survey · 红星村")
    assert "Satisfaction survey · 红星村 · question 1 of 9" in first.text
    assert talk.phone.buttons == ["Satisfied", "Mostly satisfied", "Dissatisfied"]
    await talk.send("2")
    await talk.send("satisfied")
    for choice in ("Satisfied", "Satisfied", "Satisfied", "Good", "I know", "Often"):
        await talk.tap(choice)
    review = await talk.tap("Skip ➡️")
    assert "6. Overall opinion: Good" in review.text
    await talk.tap("📨 Submit")
    await talk.tap("✅ Yes, submit")
    done = await talk.send("/surveys")
    assert "Satisfaction survey · 红星村: submitted ✅" in done.text
    for text in [message_text(m) for m in talk.phone.history]:
        assert not any("\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef" for c in text), text
    talk.check()
