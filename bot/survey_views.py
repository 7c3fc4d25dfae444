"""What a survey screen looks like: text and inline keyboard, from the instrument and the draft.

Pure functions (no database, no network), so every screen can be checked in a unit test.
Texts come from the catalog (``answering.*``); buttons carry data from ``bot.callbacks``.
Texts are plain (no parse mode): item texts may hold any character.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, ReplyKeyboardMarkup

from bot.callbacks import (
    Action,
    Screen,
    StageName,
    encode_answer,
    encode_branch_list,
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
    # Inline buttons, or the phone button (a reply keyboard) for someone not registered.
    keyboard: InlineKeyboardMarkup | ReplyKeyboardMarkup | None = None


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

BRANCH_SUFFIXES = ("党总支部", "党总支", "党支部", "党委", "支部")
"""Dropped from a branch's name in headers: 东盾村党支部 reads 东盾村 on a phone."""

TRAILING_PUNCTUATION = "？?：:。.，,；;！! "
"""Stripped from a label before ``：answer`` so the line never reads 怎么样？：较好."""

PICKER_LABELLED_MAX = 12
"""Up to this many items the picker shows a labelled button each; more get numbers only."""

NUMBERS_PER_PICKER_ROW = 5


def short_branch(name: str) -> str:
    """A branch as a header shows it: 东盾村党支部 → 东盾村 (the name alone if nothing is left)."""
    for suffix in BRANCH_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name.removesuffix(suffix)
    return name


def display_name(instrument: Instrument, branch_name: str, locale: str) -> str:
    """满意度测评 · 东盾村: the instrument's short name and the branch, for buttons and headers."""
    return t(
        "answering.display_name",
        locale,
        title=instrument.display_title(locale),
        branch=short_branch(branch_name),
    )


def unit_of(instrument: Instrument, locale: str) -> str:
    """题 for questions, 项 for the lines of a scored sheet (a checklist item is not a 题)."""
    key = "answering.unit.item" if instrument.is_scored else "answering.unit.question"
    return t(key, locale)


def _flat(text: str) -> str:
    """Text on one line, runs of whitespace as one space."""
    return " ".join(text.split())


def item_label(item: Item, locale: str, number: int | None = None) -> str:
    """A few words naming an item (总体评价); its number when the instrument gives none.

    Never a cut: a text cut mid-phrase reads as something else, so a long item text is
    named by its number instead (第12项).
    """
    # A choice's description names its aspect (领导班子好); a scored line's is a standard.
    described = item.description if item.kind == "choice" else None
    for text in (item.short_label, described):
        if text is not None and len(_flat(text.get(locale))) <= LABEL_CHARS:
            return _flat(text.get(locale)).rstrip(TRAILING_PUNCTUATION)
    flat = _flat(item.text.get(locale)).rstrip(TRAILING_PUNCTUATION)
    if len(flat) <= LABEL_CHARS or number is None:
        return flat
    return t("answering.item_number", locale, number=number)


def format_answer(item: Item, value: AnswerValue | None, locale: str) -> str:
    """One answer in a few words: 满意 · 18 分 · 扣 2 分（原因）· the text (never cut)."""
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
        amount = format_amount(value.deduction)
        return t(
            "answering.answer.deduction", locale, amount=amount, reason=_flat(value.reason or "")
        )
    return _flat(value.text or "")


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
    """One line naming the form and the branch: 满意度测评 · 东盾村."""
    return display_name(survey.instrument, survey.branch_name, survey.locale)


def _question_header(survey: Survey, position: int) -> str:
    """满意度测评 · 东盾村 · 第 2/9 题 — one line; a scored sheet names the section too."""
    instrument, locale = survey.instrument, survey.locale
    item = instrument.items[position]
    progress = t(
        "answering.progress",
        locale,
        number=position + 1,
        count=len(instrument.items),
        unit=unit_of(instrument, locale),
    )
    if instrument.is_scored and len(instrument.sections) > 1:
        section = instrument.section_of(item.id).title.get(locale)
        progress = t("answering.progress_section", locale, progress=progress, section=section)
    return t("answering.question_header", locale, header=_header(survey), progress=progress)


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


def render(
    survey: Survey, state: DraftState, notice: str | None = None, *, intro: bool = False
) -> View:
    """The screen the draft is on, with an optional notice (an error, a reminder) on top.

    ``intro``: open with the instrument's intro (the anonymity notice), said once when the
    survey starts and never again on a re-ask.
    """
    stage = state.screen.stage.name
    if stage is StageName.REVIEW:
        view = review_view(survey, state)
    elif stage is StageName.PICK:
        view = picker_view(survey, state)
    elif stage is StageName.CONFIRM:
        view = confirm_view(survey, state)
    elif stage is StageName.AMOUNT:
        view = amount_view(survey, state)
    elif stage is StageName.REASON:
        view = reason_view(survey, state)
    else:
        view = question_view(survey, state, intro=intro)
    if notice:
        return View(f"{notice}\n\n{view.text}", view.keyboard)
    return view


def _data(survey: Survey, state: DraftState, action: Action, arg: str | int | None = None) -> str:
    """Callback data of a button drawn for this screen of this draft."""
    screen = state.screen
    return encode_answer(survey.assignment_id, screen.revision, screen.position, action, arg)


def _question_text(
    survey: Survey, state: DraftState, hint: str | None, *, intro: bool = False
) -> str:
    """One header line, the item (its aspect labelled), its current answer, hint and total."""
    instrument, locale = survey.instrument, survey.locale
    position = state.screen.position
    item = instrument.items[position]
    opening = instrument.intro.get(locale) if instrument.intro and intro else None
    # A choice's description names the aspect it asks about and comes first (测评要点);
    # a scored line's description is the standard it is scored against, after it.
    described = _flat(item.description.get(locale)) if item.description else None
    aspect = t("answering.aspect", locale, text=described) if described else None
    standard = None
    if described and item.kind != "choice":
        aspect, standard = None, t("answering.standard", locale, text=described)
    current = state.answers.get(item.id)
    current_line = (
        t("answering.current_answer", locale, answer=format_answer(item, current, locale))
        if current is not None
        else None
    )
    return _join(
        opening and f"{opening}\n",
        _question_header(survey, position),
        aspect,
        item.text.get(locale),
        standard,
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


def question_view(survey: Survey, state: DraftState, *, intro: bool = False) -> View:
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
        if not state.screen.stage.from_review and _rest_open(survey, state):
            rows.append([_labelled(survey, state, "answering.button.rest", Action.REST)])
    rows.extend(_navigation(survey, state, item))
    text = _question_text(survey, state, _question_hint(item, locale), intro=intro)
    return View(text, InlineKeyboardMarkup(rows) if rows else None)


def rest_of_section(instrument: Instrument, position: int) -> list[Item]:
    """The items of the section at ``position`` from there to its end."""
    item = instrument.items[position]
    section = instrument.section_of(item.id)
    ids = [each.id for each in section.items]
    return list(section.items[ids.index(item.id) :])


def _rest_open(survey: Survey, state: DraftState) -> bool:
    """Whether 本部分其余各项均不扣分 would settle more than this one item."""
    rest = rest_of_section(survey.instrument, state.screen.position)
    return sum(1 for item in rest if item.id not in state.answers) > 1


def _navigation(survey: Survey, state: DraftState, item: Item) -> list[list[InlineKeyboardButton]]:
    """上一题 (or 返回核对 when changing one answer from the review) and 跳过 for optional items."""
    row: list[InlineKeyboardButton] = []
    back_key = (
        "answering.button.back_item" if survey.instrument.is_scored else "answering.button.back"
    )
    if state.screen.stage.from_review:
        row.append(_labelled(survey, state, "answering.button.to_review", Action.BACK))
    elif state.screen.position > 0:
        row.append(_labelled(survey, state, back_key, Action.BACK))
    if not item.required:
        row.append(_labelled(survey, state, "answering.button.skip", Action.SKIP))
    return [row] if row else []


def deduction_range(item: Item) -> tuple[str, str]:
    """(least, most) a deduction can be, as the prompt and the error both say it."""
    return format_amount(item.step), format_amount(item.max_points or 0)


def amount_view(survey: Survey, state: DraftState) -> View:
    """How much to deduct on this line: buttons 0.5, 1, 2, … or a typed number."""
    item = survey.instrument.items[state.screen.position]
    rows = _amounts(survey, state, Action.AMOUNT, deduction_choices(item))
    rows.append([_labelled(survey, state, "answering.button.cancel_deduction", Action.BACK)])
    least, most = deduction_range(item)
    hint = t("answering.ask_amount", survey.locale, min=least, max=most)
    return View(_question_text(survey, state, hint), InlineKeyboardMarkup(rows))


def reason_view(survey: Survey, state: DraftState) -> View:
    """Ask for the reason of the deduction just chosen (the next text message)."""
    locale = survey.locale
    item = survey.instrument.items[state.screen.position]
    amount = format_amount(state.screen.stage.amount or Decimal(0))
    hint = t("answering.ask_reason", locale, amount=amount, max_length=item.max_length)
    back = _labelled(survey, state, "answering.button.change_amount", Action.BACK)
    return View(_question_text(survey, state, hint), InlineKeyboardMarkup([[back]]))


# --- Review, picker, confirmation, thanks ---------------------------------------------------


def _only_deductions(instrument: Instrument) -> bool:
    """A checklist scored by deduction: the review lists what was deducted, not every line."""
    return all(item.kind == "deduction" for item in instrument.items)


def deduction_lines(survey: Survey, answers: Mapping[str, AnswerValue]) -> list[str]:
    """The deductions only, one line each: "第3项（党建基础）：扣 2 分（台账不全）"."""
    instrument, locale = survey.instrument, survey.locale
    lines = []
    for number, item in enumerate(instrument.items, start=1):
        answer = answers.get(item.id)
        if answer is None or not answer.deduction:
            continue
        section = instrument.section_of(item.id).title.get(locale)
        lines.append(
            t(
                "answering.review.deduction_line",
                locale,
                number=number,
                section=section,
                answer=format_answer(item, answer, locale),
            )
        )
    return lines


def review_lines(survey: Survey, answers: Mapping[str, AnswerValue]) -> list[str]:
    """Every answer, one line each ("1. 领导班子好：满意"); a checklist's deductions only."""
    instrument, locale = survey.instrument, survey.locale
    if _only_deductions(instrument):
        lines = deduction_lines(survey, answers)
        rest = sum(
            1
            for item in instrument.items
            if (answer := answers.get(item.id)) is not None and not answer.deduction
        )
        if rest:
            key = "answering.review.rest_none" if lines else "answering.review.all_none"
            lines.append(t(key, locale, count=rest))
        return lines
    return [
        t(
            "answering.review.line",
            locale,
            number=number,
            label=item_label(item, locale, number),
            answer=format_answer(item, answers.get(item.id), locale),
        )
        for number, item in enumerate(instrument.items, start=1)
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
    key = "answering.review.missing_items" if instrument.is_scored else "answering.review.missing"
    return t(key, locale, numbers=separator.join(numbers), unit=unit_of(instrument, locale))


def review_view(survey: Survey, state: DraftState) -> View:
    """The answers, then 提交 first and one button that opens the picker of answers to change."""
    locale = survey.locale
    title_key = (
        "answering.review.title_items" if survey.instrument.is_scored else "answering.review.title"
    )
    text = _join(
        _header(survey),
        t(title_key, locale),
        "\n".join(review_lines(survey, state.answers)),
        _score_line(survey, state.answers),
        missing_text(survey.instrument, state.answers, locale),
    )
    pick_key = (
        "answering.button.pick_item" if survey.instrument.is_scored else "answering.button.pick"
    )
    rows = [
        [_labelled(survey, state, "answering.button.submit", Action.SUBMIT)],
        [_labelled(survey, state, pick_key, Action.PICK)],
    ]
    return View(text, InlineKeyboardMarkup(rows))


def picker_view(survey: Survey, state: DraftState) -> View:
    """Which answer to change: a short label each (总体评价), or numbers on a long checklist."""
    instrument, locale = survey.instrument, survey.locale
    items = instrument.items
    if len(items) <= PICKER_LABELLED_MAX:
        rows = [
            [
                _button(
                    t(
                        "answering.button.pick_one",
                        locale,
                        number=number,
                        label=item_label(item, locale, number),
                    ),
                    _data(survey, state, Action.EDIT, number - 1),
                )
            ]
            for number, item in enumerate(items, start=1)
        ]
    else:
        numbers = [
            _button(str(number), _data(survey, state, Action.EDIT, number - 1))
            for number in range(1, len(items) + 1)
        ]
        rows = _rows(numbers, NUMBERS_PER_PICKER_ROW)
    rows.append([_labelled(survey, state, "answering.button.to_review", Action.RETURN)])
    title = t("answering.picker.title", locale, unit=unit_of(instrument, locale))
    return View(_join(_header(survey), title), InlineKeyboardMarkup(rows))


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


def thanks_view(
    survey: Survey,
    total: Decimal | None,
    *,
    answers: Mapping[str, AnswerValue] | None = None,
    next_round_id: int | None = None,
) -> View:
    """Thanks, and what happens next; inspectors get the deductions to read out on site."""
    locale = survey.locale
    if survey.instrument.anonymous:
        body = t("answering.thanks.anonymous", locale)
    elif total is not None:
        body = t("answering.thanks.scored", locale, total=format_amount(total))
    else:
        body = t("answering.thanks.named", locale)
    read_out = None
    if answers is not None and _only_deductions(survey.instrument):
        lines = deduction_lines(survey, answers)
        read_out = (
            _join(t("answering.thanks.deductions", locale), *lines)
            if lines
            else t("answering.thanks.no_deductions", locale)
        )
    keyboard = None
    if next_round_id is not None:
        button = _button(
            t("answering.button.next_branch", locale), encode_branch_list(next_round_id)
        )
        keyboard = InlineKeyboardMarkup([[button]])
    more = t("answering.thanks.more", locale)
    return View(_join(_header(survey), body, read_out, more), keyboard)
