"""Survey screens drawn from an instrument and a draft, without Telegram or a database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.pofile import read_po
from telegram import InlineKeyboardMarkup

from bot.answer_lists import TodoEntry, todo_view, window_text
from bot.callbacks import MAX_CALLBACK_BYTES, Action, AnswerTap, Screen, Stage, StageName, decode
from bot.survey_views import (
    DraftState,
    Survey,
    View,
    deduction_choices,
    format_answer,
    points_choices,
    render,
    review_view,
    running_total,
    thanks_view,
)
from surveys.i18n import LOCALE_DIR
from surveys.instruments import AnswerValue, Instrument, bundled_instruments, get_instrument

SATISFACTION = get_instrument("satisfaction")
SELF_EVALUATION = get_instrument("self_evaluation")
INSPECTION = get_instrument("inspection_village")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def survey(instrument: Instrument, locale: str = "zh_CN") -> Survey:
    """Assignment 12 about 红星村党支部."""
    return Survey(12, instrument, "红星村党支部", locale)


def state(
    answers: dict[str, AnswerValue] | None = None,
    position: int = 0,
    stage: Stage | None = None,
    revision: int = 5,
) -> DraftState:
    """A draft at revision 5 on the given screen."""
    return DraftState(answers or {}, Screen(revision, position, stage or Stage()))


def labels(view: View) -> list[list[str]]:
    """The keyboard as rows of button texts."""
    assert view.keyboard is not None
    return [[button.text for button in row] for row in view.keyboard.inline_keyboard]


def taps(view: View) -> list[AnswerTap]:
    """Every button of the view decoded (they must all be valid answer taps)."""
    assert isinstance(view.keyboard, InlineKeyboardMarkup)
    decoded = [
        decode(str(button.callback_data)) for row in view.keyboard.inline_keyboard for button in row
    ]
    assert all(isinstance(tap, AnswerTap) for tap in decoded)
    return decoded  # type: ignore[return-value]


# --- Question screens -------------------------------------------------------------------------


def test_the_first_question_says_the_survey_is_anonymous_and_offers_one_option_per_row() -> None:
    view = render(survey(SATISFACTION), state(), intro=True)
    assert "不记名" in view.text
    # One header line with the short name (issue 14), the aspect labelled, then the question.
    header = "满意度测评 · 红星村 · 第 1/9 题"
    assert f"{header}\n测评要点：领导班子好\n您对本支部的领导班子" in view.text
    assert "基层党组织分类定级" not in view.text
    assert labels(view) == [["满意"], ["基本满意"], ["不满意"]]  # no 上一题 on question 1
    assert [(tap.revision, tap.position, tap.action, tap.arg) for tap in taps(view)] == [
        (5, 0, Action.CHOOSE, "0"),
        (5, 0, Action.CHOOSE, "1"),
        (5, 0, Action.CHOOSE, "2"),
    ]


def test_a_later_question_shows_the_given_answer_and_a_back_button() -> None:
    answers = {"q2": AnswerValue(choice="dissatisfied")}
    view = render(survey(SATISFACTION), state(answers, position=1))
    assert "不记名" not in view.text  # the intro opens the survey once
    assert "当前回答：不满意" in view.text
    assert labels(view) == [["满意"], ["基本满意"], ["✅ 不满意"], ["⬅️ 上一题"]]


def test_the_optional_suggestion_can_be_skipped_and_says_how_long_it_may_be() -> None:
    view = render(survey(SATISFACTION), state(position=8))
    assert "最多 500 字" in view.text
    assert labels(view) == [["⬅️ 上一题", "跳过 ➡️"]]


def test_changing_an_answer_from_the_review_offers_the_way_back_to_it() -> None:
    view = render(survey(SATISFACTION), state(position=3, stage=Stage(from_review=True)))
    assert labels(view)[-1] == ["↩️ 返回核对"]


def test_points_buttons_offer_the_maximum_a_few_below_it_and_zero() -> None:
    leader = SELF_EVALUATION.item("leader")  # worth 20
    assert points_choices(leader) == [Decimal(n) for n in (20, 19, 18, 17, 16, 15, 0)]
    view = render(survey(SELF_EVALUATION), state())
    assert labels(view) == [["20", "19", "18", "17"], ["16", "15", "0"]]
    assert "0 到 20" in view.text and "当前得分 0/100" in view.text


def test_a_deduction_line_takes_one_tap_for_no_deduction() -> None:
    view = render(survey(INSPECTION), state())
    assert labels(view) == [["✅ 不扣分"], ["➖ 扣分"], ["⏭️ 本部分其余各项均不扣分"]]
    assert "观摩检查评分 · 红星村 · 第 1/37 项（党建基础）" in view.text
    assert "本项满分 3 分" in view.text
    assert "当前得分 100/100" in view.text


def test_deduction_amounts_run_from_a_half_to_the_items_points() -> None:
    three = INSPECTION.item("basics_1")
    assert deduction_choices(three) == [Decimal("0.5"), Decimal(1), Decimal(2), Decimal(3)]
    view = render(survey(INSPECTION), state(stage=Stage(StageName.AMOUNT)))
    assert labels(view) == [["0.5", "1", "2", "3"], ["⬅️ 返回"]]
    assert "0.5 到 3 分" in view.text  # the same range as the error for a typed amount
    assert [tap.arg for tap in taps(view)[:4]] == ["0.5", "1", "2", "3"]


def test_the_reason_prompt_names_the_amount() -> None:
    view = render(survey(INSPECTION), state(stage=Stage(StageName.REASON, Decimal("1.5"))))
    assert "本项扣 1.5 分" in view.text
    assert labels(view) == [["⬅️ 改扣分数"]]


def test_a_notice_comes_above_the_question_and_never_repeats_the_intro() -> None:
    view = render(survey(SATISFACTION), state(), notice="请点按下面的按钮作答。")
    assert view.text.startswith("请点按下面的按钮作答。\n\n")
    assert "不记名" not in view.text
    assert labels(view) == [["满意"], ["基本满意"], ["不满意"]]


# --- Totals and compact answers ---------------------------------------------------------------


def test_the_running_total_of_an_inspection_subtracts_deductions_so_far() -> None:
    answers = {
        "basics_1": AnswerValue(deduction=Decimal(1), reason="未公示"),
        "basics_2": AnswerValue(deduction=Decimal(0)),
        "basics_3": AnswerValue(deduction=Decimal("2.5"), reason="未建立"),
    }
    assert running_total(INSPECTION, answers) == Decimal("96.5")


def test_the_running_total_of_a_self_evaluation_adds_the_points_given() -> None:
    answers = {"leader": AnswerValue(points=Decimal("18.5")), "work_ideas": AnswerValue(points=9)}
    assert running_total(SELF_EVALUATION, answers) == Decimal("27.5")
    assert running_total(SATISFACTION, {}) is None  # no points on the satisfaction survey


def test_answers_are_shown_in_a_few_words() -> None:
    deduction = INSPECTION.item("basics_1")
    assert format_answer(deduction, AnswerValue(deduction=Decimal(0)), "zh_CN") == "不扣分"
    assert (
        format_answer(deduction, AnswerValue(deduction=Decimal(2), reason="台账不全"), "zh_CN")
        == "扣 2 分（台账不全）"
    )
    assert format_answer(SATISFACTION.item("q9"), None, "zh_CN") == "（未填）"
    assert format_answer(SATISFACTION.item("q1"), None, "zh_CN") == "未答"
    assert format_answer(SATISFACTION.item("q1"), AnswerValue(choice="satisfied"), "en") == (
        "Satisfied"
    )


# --- Review, confirmation, thanks -------------------------------------------------------------


def test_the_review_puts_submit_first_and_one_button_that_opens_the_picker() -> None:
    answers = {f"q{n}": AnswerValue(choice="satisfied") for n in range(1, 6)}
    view = review_view(survey(SATISFACTION), state(answers, stage=Stage(StageName.REVIEW)))
    assert "1. 领导班子好：满意" in view.text
    assert "6. 总体评价：未答" in view.text  # a short label, no doubled punctuation
    assert "？：" not in view.text
    assert "还有第 6、7、8 题没有回答" in view.text  # q9 is optional
    assert labels(view) == [["📨 提交"], ["✏️ 修改某一题"]]
    assert [tap.action for tap in taps(view)] == [Action.SUBMIT, Action.PICK]


def test_the_picker_names_each_question_briefly() -> None:
    view = render(survey(SATISFACTION), state(stage=Stage(StageName.PICK)))
    assert labels(view)[5:8] == [["6. 总体评价"], ["7. 知晓情况"], ["8. 参与情况"]]
    assert labels(view)[-1] == ["↩️ 返回核对"]
    edits = [tap for tap in taps(view) if tap.action is Action.EDIT]
    assert [tap.arg for tap in edits] == [str(n) for n in range(9)]


def test_an_inspection_review_lists_only_the_deductions() -> None:
    answers = {item.id: AnswerValue(deduction=Decimal(0)) for item in INSPECTION.items}
    answers["basics_3"] = AnswerValue(deduction=Decimal(2), reason="网格支部未建立")
    view = review_view(survey(INSPECTION), state(answers, stage=Stage(StageName.REVIEW)))
    assert "第3项（党建基础）：扣 2 分（网格支部未建立）" in view.text
    assert "其余 36 项不扣分" in view.text
    assert "题" not in view.text
    assert labels(view) == [["📨 提交"], ["✏️ 修改某一项"]]


def test_the_confirmation_asks_once_more_and_offers_the_way_back() -> None:
    view = render(survey(SATISFACTION), state(stage=Stage(StageName.CONFIRM)))
    assert "提交后不能再修改" in view.text
    assert labels(view) == [["✅ 确认提交"], ["✏️ 返回修改"]]


def test_thanks_say_what_happens_next() -> None:
    anonymous = thanks_view(survey(SATISFACTION), None)
    assert "当场统计公布" in anonymous.text and anonymous.keyboard is None
    answers = {"basics_3": AnswerValue(deduction=Decimal("3.5"), reason="未建立")}
    scored = thanks_view(survey(INSPECTION), Decimal("96.5"), answers=answers, next_round_id=3)
    assert "总分 96.5 分" in scored.text
    assert "本次扣分项（可现场反馈）：\n第3项（党建基础）：扣 3.5 分（未建立）" in scored.text
    assert labels(scored) == [["📋 评下一个支部"]]


def test_every_button_of_every_screen_of_every_form_fits_in_callback_data() -> None:
    for instrument in bundled_instruments():
        for position in range(len(instrument.items)):
            for stage in (
                Stage(),
                Stage(StageName.AMOUNT),
                Stage(StageName.REASON, Decimal(1)),
                Stage(StageName.PICK),
            ):
                if stage.name in (StageName.AMOUNT, StageName.REASON) and instrument.items[
                    position
                ].kind != ("deduction"):
                    continue
                view = render(survey(instrument), state(position=position, stage=stage))
                for row in view.keyboard.inline_keyboard if view.keyboard else ():
                    for button in row:
                        assert len(str(button.callback_data).encode()) <= MAX_CALLBACK_BYTES


# --- Lists ------------------------------------------------------------------------------------


def entry(**changes: object) -> TodoEntry:
    """A satisfaction survey in progress, open until 2026-03-16 09:00 Shanghai time."""
    values: dict[str, object] = {
        "assignment_id": 3,
        "round_id": 1,
        "title": "满意度测评",
        "branch_name": "红星村党支部",
        "answered": 3,
        "total": 9,
        "status": "in_progress",
        "window": "open",
        "opens_at": None,
        "deadline": datetime(2026, 3, 16, 1, 0, tzinfo=UTC),
        "inspection": False,
    }
    values.update(changes)
    return TodoEntry(**values)  # type: ignore[arg-type]


def test_the_todo_list_shows_progress_and_the_deadline_in_shanghai_time() -> None:
    view = todo_view([entry()], "zh_CN", SHANGHAI)
    assert "已答 3/9 题" in view.text
    assert "截止 2026年03月16日 09:00" in view.text  # 01:00 UTC is 09:00 in Shanghai
    assert labels(view) == [["▶️ 继续：满意度测评 · 红星村"]]


def test_each_start_button_names_its_branch() -> None:
    scorings = [
        entry(assignment_id=n, title="上级评分", branch_name=name, answered=0, status="pending")
        for n, name in ((5, "红星村党支部"), (6, "东方机械厂党支部"))
    ]
    view = todo_view(scorings, "zh_CN", SHANGHAI)
    assert labels(view) == [["▶️ 开始：上级评分 · 红星村"], ["▶️ 开始：上级评分 · 东方机械厂"]]


def test_what_was_submitted_stays_on_the_list() -> None:
    view = todo_view([entry(status="submitted")], "zh_CN", SHANGHAI)
    assert view.text == "目前没有需要您填写的测评。\n满意度测评 · 红星村：已提交 ✅"


def test_the_todo_list_groups_an_inspectors_branches_behind_one_button() -> None:
    branches = [
        entry(assignment_id=7, title="观摩检查评分", branch_name="红星村党支部", inspection=True),
        entry(
            assignment_id=8,
            title="观摩检查评分",
            branch_name="东方机械厂党支部",
            inspection=True,
            status="submitted",
        ),
    ]
    view = todo_view(branches, "zh_CN", SHANGHAI)
    assert "已评 1/2 个支部" in view.text
    assert "观摩检查评分：已评 1/2 个支部" in view.text
    assert labels(view) == [["📋 选择支部：观摩检查评分"]]


def test_what_is_not_open_has_no_button_and_says_when() -> None:
    later = entry(window="not_open", opens_at=datetime(2026, 3, 20, 0, 0, tzinfo=UTC))
    closed = entry(assignment_id=4, window="closed")
    view = todo_view([later, closed], "zh_CN", SHANGHAI)
    assert "2026年03月20日 08:00 开放" in view.text and "已截止" in view.text
    assert view.keyboard is None


def test_refusals_outside_the_window_give_the_dates() -> None:
    deadline = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)
    closed = window_text("closed", opens_at=None, deadline=deadline, locale="zh_CN", zone=SHANGHAI)
    assert "2026年03月16日 09:00" in closed and "截止" in closed
    opens = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    early = window_text("not_open", opens_at=opens, deadline=None, locale="en", zone=SHANGHAI)
    assert "2026-03-01 08:00" in early


# --- The catalog --------------------------------------------------------------------------------


def catalog_keys(locale: str) -> dict[str, str]:
    """The messages of answering.po in one locale."""
    path = Path(LOCALE_DIR) / locale / "LC_MESSAGES" / "answering.po"
    with path.open("rb") as handle:
        return {str(m.id): str(m.string) for m in read_po(handle) if m.id}


def test_the_english_catalog_has_every_answering_text() -> None:
    chinese, english = catalog_keys("zh_CN"), catalog_keys("en")
    assert set(english) == set(chinese)
    assert all(text.strip() for text in english.values())


def test_an_english_screen_is_in_english() -> None:
    view = render(survey(SATISFACTION, "en"), state(position=1))
    assert "Satisfaction survey · 红星村 · question 2 of 9" in view.text
    assert labels(view)[-1] == ["⬅️ Previous"]
