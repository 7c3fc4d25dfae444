"""Inspectors scoring branches on site by deduction, one branch after another, end to end."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from storage.models import (
    Answer,
    Response,
)
from surveys.i18n import t
from surveys.instruments import get_instrument

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness


from tests.support_answering import (
    INSPECTOR,
    assignment_of,
    draft_of,
    registered,
)


async def test_an_inspector_scores_one_branch_by_deduction_then_picks_the_next(
    bot: BotHarness,
) -> None:
    phone = await registered(bot, "inspector", INSPECTOR)
    todo = await phone.send("/surveys")
    assert "已评 0/2 个支部" in todo.text
    branches = await phone.tap(phone.buttons[0])
    assert "红星村：未开始" in branches.text
    await phone.tap(next(b for b in phone.buttons if b.startswith("红星村")))
    assert "当前得分 100/100" in phone.screen.text

    await phone.tap("➖ 扣分")
    assert phone.buttons[:4] == ["0.5", "1", "2", "3"]  # basics_1 is worth 3 points
    asked = await phone.tap("1")
    assert "请发送扣分原因" in asked.text
    after_reason = await phone.send("服务项目未公示")
    assert "第 2/37 项" in after_reason.text and "当前得分 99/100" in after_reason.text
    await phone.tap("✅ 不扣分")  # basics_2
    await phone.tap("➖ 扣分")  # basics_3
    await phone.send("2.5")  # typed amount
    running = await phone.send("网格支部未建立")
    assert "当前得分 96.5/100" in running.text
    items = get_instrument("inspection_village").items
    for _ in range(3, len(items)):
        await phone.tap("✅ 不扣分")
    review = phone.screen.text
    assert "扣 1 分（服务项目未公示）" in review and "当前得分 96.5/100" in review
    # On second thought the first line deserves a deduction of 0.5 only.
    await phone.tap("✏️ 修改某一项")
    await phone.tap("1")
    await phone.tap("➖ 扣分")
    await phone.tap("0.5")
    changed = await phone.send("服务项目未公示")
    assert "扣 0.5 分（服务项目未公示）" in changed.text and "当前得分 97/100" in changed.text
    await phone.tap("📨 提交")
    thanks = await phone.tap("✅ 确认提交")
    assert "总分 97 分" in thanks.text

    with Session(bot.engine) as session:
        response = session.exec(select(Response)).one()
        assert response.total == Decimal("97")
        deducted = session.exec(select(Answer).where(Answer.deduction > 0)).all()  # type: ignore[operator]
        reasons = {row.item_id: (row.deduction, row.reason) for row in deducted}
    assert reasons == {
        "basics_1": (Decimal("0.5"), "服务项目未公示"),
        "basics_3": (Decimal("2.5"), "网格支部未建立"),
    }

    listing = await phone.tap("📋 评下一个支部")
    assert "红星村：已提交" in listing.text
    second = await phone.tap(next(b for b in phone.buttons if b.startswith("东方机械厂")))
    assert "东方机械厂" in second.text and "第 1/" in second.text


async def test_a_deduction_needs_a_reason_and_a_valid_amount(bot: BotHarness) -> None:
    phone = await registered(bot, "inspector", INSPECTOR)
    await phone.send("/surveys")
    await phone.tap(phone.buttons[0])
    await phone.tap(next(b for b in phone.buttons if b.startswith("红星村")))
    typed_reason = await phone.send("台账不全")  # a reason before any amount: what to do next
    assert t("answering.hint.deduct_first") in typed_reason.text
    asked = await phone.tap("➖ 扣分")
    assert "0.5 到 3 分" in asked.text
    too_much = await phone.send("4")  # basics_1 is worth 3
    assert "0.5 到 3 分" in too_much.text  # the prompt's range, not the validator's 0
    await phone.tap("2")
    blank = await phone.send("   ")
    assert t("answering.error.reason_required") in blank.text
    back = await phone.tap("⬅️ 改扣分数")
    assert "扣多少分" in back.text
    mine = assignment_of(bot.engine, bot.world, "inspector", "inspection_village")
    draft = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert draft is not None and draft.answers == {}


async def test_the_rest_of_a_section_takes_one_tap_and_the_review_lists_only_deductions(
    bot: BotHarness,
) -> None:
    phone = await registered(bot, "inspector", INSPECTOR)
    await phone.send("/surveys")
    await phone.tap(phone.buttons[0])
    await phone.tap(next(b for b in phone.buttons if b.startswith("红星村")))
    await phone.tap("➖ 扣分")
    await phone.tap("2")
    await phone.send("服务项目未公示")  # basics_1
    sheet = get_instrument("inspection_village")
    for following in [*sheet.sections[1:], None]:
        next_section = await phone.tap("⏭️ 本部分其余各项均不扣分")
        if following is not None:  # on to the first line of the next section
            first = sheet.items.index(following.items[0]) + 1
            assert f"第 {first}/{len(sheet.items)} 项（{following.title.zh}）" in next_section.text
    review = phone.screen.text
    assert "第1项（党建基础）：扣 2 分（服务项目未公示）" in review
    assert f"其余 {len(sheet.items) - 1} 项不扣分" in review
    assert "题" not in review
    assert phone.buttons == ["📨 提交", "✏️ 修改某一项"]
    await phone.tap("📨 提交")
    thanks = await phone.tap("✅ 确认提交")
    assert "本次扣分项（可现场反馈）：\n第1项（党建基础）：扣 2 分（服务项目未公示）" in thanks.text
    mine = assignment_of(bot.engine, bot.world, "inspector", "inspection_village")
    with Session(bot.engine) as session:
        answers = session.exec(select(Answer)).all()
    assert len(answers) == len(sheet.items)
    assert mine.status == "submitted"
