"""What a survey screen looks like: text and inline keyboard, from the instrument and the draft.

Pure functions (no database, no network), so every screen can be checked in a unit test.
Texts come from the catalog (``answering.*``); buttons carry data from ``bot.callbacks``.
Texts are plain (no parse mode): item texts may hold any character.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.callbacks import (
    Action,
    Screen,
    StageName,
    encode_answer,
    encode_branch_list,
    encode_start,
    format_amount,
)
from surveys.i18n import t
from surveys.instruments import AnswerValue, Instrument, Item

NUMBERS_PER_ROW = 4
EDITS_PER_ROW = 4
LABEL_CHARS = 16
ANSWER_CHARS = 24
POINT_BUTTONS = 6  # max, max-1, … then 0


@dataclass(frozen=True)
class View:
    """One screen: the message text and its buttons."""

    text: str
    keyboard: InlineKeyboardMarkup | None = None


@dataclass(frozen=True)
class Survey:
    """The fixed part of every screen of one assignment."""

    assignment_id: int
    instrument: Instrument
    branch_name: str
    locale: str


@dataclass(frozen=True)
class DraftState:
    """The answers so far and the screen the draft is on."""

    answers: Mapping[str, AnswerValue]
    screen: Screen


# --- Numbers --------------------------------------------------------------------------------


def points_choices(item: Item) -> list[Decimal]:
    """Common scores for a points item: the maximum and a few below it, then 0."""
    assert item.max_points is not None
    top = item.max_points
    values = [top - n for n in range(POINT_BUTTONS) if top - n > 0 and (top - n) % item.step == 0]
    return [*values, Decimal(0)]


def deduction_choices(item: Item) -> list[Decimal]:
    """Common deductions: 0.5, 1, 2, … up to the item's points (all of them when allowed)."""
    assert item.max_points is not None
    top = item.max_points
    candidates = [Decimal("0.5"), *(Decimal(n) for n in range(1, int(top) + 1)), top]
    seen: list[Decimal] = []
    for value in candidates:
        if 0 < value <= top and value % item.step == 0 and value not in seen:
            seen.append(value)
    return seen


def instrument_max(instrument: Instrument) -> Decimal:
    """The points a whole form can earn."""
    if instrument.total_points is not None:
        return instrument.total_points
    return sum((section.max_points for section in instrument.sections), Decimal(0))


def running_total(instrument: Instrument, answers: Mapping[str, AnswerValue]) -> Decimal | None:
    """Score so far: deduction lines count full until deducted, points lines count once given."""
    if not instrument.is_scored:
        return None
    total = Decimal(0)
    for item in instrument.items:
        answer = answers.get(item.id)
        if item.kind == "deduction" and item.max_points is not None:
            deducted = answer.deduction if answer and answer.deduction is not None else 0
            total += max(Decimal(0), item.max_points - deducted)
        elif item.kind == "points" and answer is not None and answer.points is not None:
            total += answer.points
    return total


def answered_count(instrument: Instrument, answers: Mapping[str, AnswerValue]) -> int:
    """How many items of the form have an answer."""
    return sum(1 for item in instrument.items if item.id in answers)


# --- Small pieces ---------------------------------------------------------------------------


def _shorten(text: str, limit: int) -> str:
    """Text cut to ``limit`` characters with an ellipsis, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def item_label(item: Item, locale: str) -> str:
    """A short name for an item in the review: its description for choices, else its text."""
    if item.kind == "choice" and item.description is not None:
        return _shorten(item.description.get(locale), LABEL_CHARS)
    return _shorten(item.text.get(locale), LABEL_CHARS)


def format_answer(item: Item, value: AnswerValue | None, locale: str) -> str:
    """One answer in a few words: 满意 · 18 分 · 扣 2 分（原因）· the text."""
    if value is None:
        key = "answering.answer.skipped" if not item.required else "answering.answer.none"
        return t(key, locale)
    if value.choice is not None:
        return item.option(value.choice).text.get(locale)
    if value.points is not None:
        return t("answering.answer.points", locale, points=format_amount(value.points))
    if value.deduction is not None:
        if value.deduction == 0:
            return t("answering.answer.no_deduction", locale)
        reason = _shorten(value.reason or "", ANSWER_CHARS)
        amount = format_amount(value.deduction)
        return t("answering.answer.deduction", locale, amount=amount, reason=reason)
    return _shorten(value.text or "", ANSWER_CHARS)


def _button(label: str, data: str) -> InlineKeyboardButton:
    """An inline button that sends callback data."""
    return InlineKeyboardButton(label, callback_data=data)


def _rows(
    buttons: Sequence[InlineKeyboardButton], per_row: int
) -> list[list[InlineKeyboardButton]]:
    """Buttons laid out a few per row."""
    return [list(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row)]


def _labelled(
    survey: Survey, state: DraftState, key: str, action: Action, arg: str | int | None = None
) -> InlineKeyboardButton:
    """A survey button whose label is the catalog text ``key``."""
    return _button(t(key, survey.locale), _data(survey, state, action, arg))


def _amounts(
    survey: Survey, state: DraftState, action: Action, values: list[Decimal]
) -> list[list[InlineKeyboardButton]]:
    """Number buttons, a few per row (short labels fit side by side)."""
    buttons = [
        _button(format_amount(value), _data(survey, state, action, format_amount(value)))
        for value in values
    ]
    return _rows(buttons, NUMBERS_PER_ROW)


def _header(survey: Survey) -> str:
    """Form title and the branch it is about."""
    title = survey.instrument.title.get(survey.locale)
    return t("answering.header", survey.locale, title=title, branch=survey.branch_name)


def _score_line(survey: Survey, answers: Mapping[str, AnswerValue]) -> str | None:
    """当前得分 87.5/100 for scored forms."""
    score = running_total(survey.instrument, answers)
    if score is None:
        return None
    maximum = format_amount(instrument_max(survey.instrument))
    return t("answering.running_total", survey.locale, score=format_amount(score), max=maximum)


def _join(*parts: str | None) -> str:
    """The given lines, empty ones left out."""
    return "\n".join(part for part in parts if part)


# --- Question screens -----------------------------------------------------------------------


def render(survey: Survey, state: DraftState, notice: str | None = None) -> View:
    """The screen the draft is on, with an optional notice (an error, a reminder) on top."""
    stage = state.screen.stage.name
    if stage is StageName.REVIEW:
        view = review_view(survey, state)
    elif stage is StageName.CONFIRM:
        view = confirm_view(survey, state)
    elif stage is StageName.AMOUNT:
        view = amount_view(survey, state)
    elif stage is StageName.REASON:
        view = reason_view(survey, state)
    else:
        view = question_view(survey, state)
    if notice:
        return View(f"{notice}\n\n{view.text}", view.keyboard)
    return view


def _data(survey: Survey, state: DraftState, action: Action, arg: str | int | None = None) -> str:
    """Callback data of a button drawn for this screen of this draft."""
    screen = state.screen
    return encode_answer(survey.assignment_id, screen.revision, screen.position, action, arg)


def _question_text(survey: Survey, state: DraftState, hint: str | None) -> str:
    """Header, progress, the item, its current answer, the hint and the running total."""
    instrument, locale = survey.instrument, survey.locale
    position = state.screen.position
    item = instrument.items[position]
    section = instrument.section_of(item.id)
    # The intro (the anonymity notice, for the satisfaction survey) opens question 1 only.
    opening = position == 0 and state.screen.stage.name is StageName.QUESTION
    intro = instrument.intro.get(locale) if instrument.intro and opening else None
    progress = t(
        "answering.progress",
        locale,
        number=position + 1,
        count=len(instrument.items),
        section=section.title.get(locale),
    )
    description = item.description.get(locale) if item.description else None
    current = state.answers.get(item.id)
    current_line = (
        t("answering.current_answer", locale, answer=format_answer(item, current, locale))
        if current is not None
        else None
    )
    body = _join(item.text.get(locale), description)
    return _join(
        _header(survey),
        intro and f"\n{intro}\n",
        progress,
        body,
        current_line,
        hint,
        _score_line(survey, state.answers),
    )


def _question_hint(item: Item, locale: str) -> str | None:
    """What to do on this kind of item."""
    if item.kind == "points":
        return t("answering.hint.points", locale, max=format_amount(item.max_points or 0))
    if item.kind == "deduction":
        return t("answering.hint.deduction", locale, max=format_amount(item.max_points or 0))
    if item.kind == "text":
        key = "answering.hint.text_optional" if not item.required else "answering.hint.text"
        return t(key, locale, max_length=item.max_length)
    return None


def question_view(survey: Survey, state: DraftState) -> View:
    """One question with its answer buttons and the navigation row."""
    locale = survey.locale
    item = survey.instrument.items[state.screen.position]
    current = state.answers.get(item.id)
    rows: list[list[InlineKeyboardButton]] = []
    if item.kind == "choice":
        for index, option in enumerate(item.options):
            label = option.text.get(locale)
            if current is not None and current.choice == option.id:
                label = t("answering.button.selected", locale, label=label)
            rows.append([_button(label, _data(survey, state, Action.CHOOSE, index))])
    elif item.kind == "points":
        rows.extend(_amounts(survey, state, Action.POINTS, points_choices(item)))
    elif item.kind == "deduction":
        rows.append(
            [_labelled(survey, state, "answering.button.no_deduction", Action.NO_DEDUCTION)]
        )
        rows.append([_labelled(survey, state, "answering.button.deduct", Action.DEDUCT)])
    rows.extend(_navigation(survey, state, item))
    text = _question_text(survey, state, _question_hint(item, locale))
    return View(text, InlineKeyboardMarkup(rows) if rows else None)


def _navigation(survey: Survey, state: DraftState, item: Item) -> list[list[InlineKeyboardButton]]:
    """上一题 (or 返回核对 when changing one answer from the review) and 跳过 for optional items."""
    row: list[InlineKeyboardButton] = []
    if state.screen.stage.from_review:
        row.append(_labelled(survey, state, "answering.button.to_review", Action.BACK))
    elif state.screen.position > 0:
        row.append(_labelled(survey, state, "answering.button.back", Action.BACK))
    if not item.required:
        row.append(_labelled(survey, state, "answering.button.skip", Action.SKIP))
    return [row] if row else []


def amount_view(survey: Survey, state: DraftState) -> View:
    """How much to deduct on this line: buttons 0.5, 1, 2, … or a typed number."""
    item = survey.instrument.items[state.screen.position]
    rows = _amounts(survey, state, Action.AMOUNT, deduction_choices(item))
    rows.append([_labelled(survey, state, "answering.button.cancel_deduction", Action.BACK)])
    hint = t("answering.ask_amount", survey.locale, max=format_amount(item.max_points or 0))
    return View(_question_text(survey, state, hint), InlineKeyboardMarkup(rows))


def reason_view(survey: Survey, state: DraftState) -> View:
    """Ask for the reason of the deduction just chosen (the next text message)."""
    locale = survey.locale
    item = survey.instrument.items[state.screen.position]
    amount = format_amount(state.screen.stage.amount or Decimal(0))
    hint = t("answering.ask_reason", locale, amount=amount, max_length=item.max_length)
    back = _labelled(survey, state, "answering.button.change_amount", Action.BACK)
    return View(_question_text(survey, state, hint), InlineKeyboardMarkup([[back]]))


# --- Review, confirmation, thanks -----------------------------------------------------------


def review_lines(survey: Survey, answers: Mapping[str, AnswerValue]) -> list[str]:
    """Every answer, one compact line each: "1. 领导班子好：满意"."""
    locale = survey.locale
    return [
        t(
            "answering.review.line",
            locale,
            number=number,
            label=item_label(item, locale),
            answer=format_answer(item, answers.get(item.id), locale),
        )
        for number, item in enumerate(survey.instrument.items, start=1)
    ]


def missing_text(
    instrument: Instrument, answers: Mapping[str, AnswerValue], locale: str
) -> str | None:
    """还有第 6、7 题没有回答…, or None when every required question has an answer."""
    numbers = [
        str(number)
        for number, item in enumerate(instrument.items, start=1)
        if item.required and item.id not in answers
    ]
    if not numbers:
        return None
    separator = t("answering.list_separator", locale)
    return t("answering.review.missing", locale, numbers=separator.join(numbers))


def review_view(survey: Survey, state: DraftState) -> View:
    """All answers with a button to change each, and 提交."""
    locale = survey.locale
    items = survey.instrument.items
    text = _join(
        _header(survey),
        t("answering.review.title", locale),
        "\n".join(review_lines(survey, state.answers)),
        _score_line(survey, state.answers),
        missing_text(survey.instrument, state.answers, locale),
    )
    edits = [
        _button(
            t("answering.button.edit", locale, number=number),
            _data(survey, state, Action.EDIT, number - 1),
        )
        for number in range(1, len(items) + 1)
    ]
    rows = _rows(edits, EDITS_PER_ROW)
    rows.append([_labelled(survey, state, "answering.button.submit", Action.SUBMIT)])
    return View(text, InlineKeyboardMarkup(rows))


def confirm_view(survey: Survey, state: DraftState) -> View:
    """The last question: submit for good, or go back and change something."""
    locale = survey.locale
    key = (
        "answering.confirm.anonymous" if survey.instrument.anonymous else "answering.confirm.named"
    )
    text = _join(_header(survey), _score_line(survey, state.answers), t(key, locale))
    rows = [
        [_labelled(survey, state, "answering.button.confirm", Action.CONFIRM)],
        [_labelled(survey, state, "answering.button.return", Action.RETURN)],
    ]
    return View(text, InlineKeyboardMarkup(rows))


def thanks_view(survey: Survey, total: Decimal | None, *, next_round_id: int | None = None) -> View:
    """Thanks, and what happens next; inspectors get a button to score their next branch."""
    locale = survey.locale
    if survey.instrument.anonymous:
        body = t("answering.thanks.anonymous", locale)
    elif total is not None:
        body = t("answering.thanks.scored", locale, total=format_amount(total))
    else:
        body = t("answering.thanks.named", locale)
    keyboard = None
    if next_round_id is not None:
        button = _button(
            t("answering.button.next_branch", locale), encode_branch_list(next_round_id)
        )
        keyboard = InlineKeyboardMarkup([[button]])
    return View(_join(_header(survey), body, t("answering.thanks.more", locale)), keyboard)


# --- Lists ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TodoEntry:
    """One assignment as the to-do list shows it."""

    assignment_id: int
    round_id: int
    title: str
    branch_name: str
    answered: int
    total: int
    status: str  # pending | in_progress | submitted
    window: str  # storage.responses.WindowState value
    opens_at: datetime | None
    deadline: datetime | None
    inspection: bool


def format_time(value: datetime, locale: str, zone: ZoneInfo) -> str:
    """A UTC time as the local wall clock (Asia/Shanghai by default)."""
    return t("common.datetime", locale, value=value.astimezone(zone))


def _when_line(entry: TodoEntry, locale: str, zone: ZoneInfo) -> str:
    """截止 …, 尚未开始（…开放）or 已截止."""
    if entry.window == "not_open" and entry.opens_at is not None:
        return t("answering.todo.opens", locale, when=format_time(entry.opens_at, locale, zone))
    if entry.window == "not_open":
        return t("answering.todo.not_open", locale)
    if entry.window == "closed" or entry.deadline is None:
        return t("answering.todo.closed", locale)
    return t("answering.todo.deadline", locale, when=format_time(entry.deadline, locale, zone))


def todo_view(entries: Sequence[TodoEntry], locale: str, zone: ZoneInfo) -> View:
    """What is still to do, with deadlines and progress; a button for each open one.

    Inspection assignments are grouped per round behind one button that lists the branches.
    """
    pending = [entry for entry in entries if entry.status != "submitted"]
    if not pending:
        return View(t("answering.todo.nothing", locale))
    lines = [t("answering.todo.title", locale)]
    rows: list[list[InlineKeyboardButton]] = []
    number = 0
    for entry in _without_inspection(pending):
        number += 1
        when = _when_line(entry, locale, zone)
        lines.append(
            t(
                "answering.todo.line",
                locale,
                number=number,
                title=entry.title,
                branch=entry.branch_name,
                answered=entry.answered,
                total=entry.total,
                when=when,
            )
        )
        if entry.window == "open":
            key = "answering.button.resume" if entry.answered else "answering.button.start"
            rows.append(
                [_button(t(key, locale, title=entry.title), encode_start(entry.assignment_id))]
            )
    for round_id, group in _inspection_groups(entries).items():
        if all(entry.status == "submitted" for entry in group):
            continue
        number += 1
        first = group[0]
        done = sum(1 for entry in group if entry.status == "submitted")
        lines.append(
            t(
                "answering.todo.inspection_line",
                locale,
                number=number,
                title=t("answering.inspection_title", locale),
                done=done,
                count=len(group),
                when=_when_line(first, locale, zone),
            )
        )
        if first.window == "open":
            label = t(
                "answering.button.branches", locale, title=t("answering.inspection_title", locale)
            )
            rows.append([_button(label, encode_branch_list(round_id))])
    return View("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)


def _without_inspection(entries: Iterable[TodoEntry]) -> list[TodoEntry]:
    """The entries that are not inspection sheets."""
    return [entry for entry in entries if not entry.inspection]


def _inspection_groups(entries: Iterable[TodoEntry]) -> dict[int, list[TodoEntry]]:
    """Inspection entries by round."""
    groups: dict[int, list[TodoEntry]] = {}
    for entry in entries:
        if entry.inspection:
            groups.setdefault(entry.round_id, []).append(entry)
    return groups


def branch_list_view(entries: Sequence[TodoEntry], locale: str, zone: ZoneInfo) -> View:
    """An inspector's branches in one round, with status; a button for each one still to score."""
    if not entries:
        return View(t("answering.todo.nothing", locale))
    first = entries[0]
    lines = [
        t("answering.branches.title", locale, title=t("answering.inspection_title", locale)),
        _when_line(first, locale, zone),
    ]
    rows: list[list[InlineKeyboardButton]] = []
    for entry in entries:
        status = t(
            f"answering.status.{entry.status}",
            locale,
            answered=entry.answered,
            total=entry.total,
        )
        lines.append(t("answering.branches.line", locale, branch=entry.branch_name, status=status))
        if entry.status != "submitted" and entry.window == "open":
            label = t("answering.branches.button", locale, branch=entry.branch_name, status=status)
            rows.append([_button(label, encode_start(entry.assignment_id))])
    return View("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)


def window_text(
    window: str,
    *,
    opens_at: datetime | None,
    deadline: datetime | None,
    locale: str,
    zone: ZoneInfo,
) -> str:
    """Why answers are not taken now, with the dates."""
    if window == "not_open":
        if opens_at is not None:
            when = format_time(opens_at, locale, zone)
            return t("answering.window.not_yet", locale, when=when)
        return t("answering.window.not_open", locale)
    if deadline is not None:
        return t("answering.window.closed", locale, when=format_time(deadline, locale, zone))
    return t("answering.window.round_closed", locale)
