"""What a typed message means on the draft's current screen (问卷作答).

A number for a points or deduction question, the reason of a deduction, free text, or —
for a choice question — an option's exact text or its number (elderly members type 1 or
满意 as often as they tap). Anything else re-sends the screen with a notice that says
what to do next; the intro is never repeated.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal

from bot.answer_state import Loaded, Outcome
from bot.answer_taps import move, resend, save
from bot.callbacks import Stage, StageName, format_amount
from bot.survey_views import deduction_range
from storage.db import Session
from surveys.i18n import t
from surveys.instruments import AnswerError, AnswerValue, Item, parse_number, validate_answer

TYPED_PUNCTUATION = "。.！!？?，,、 "
"""Stripped from the ends of a typed option: 满意。 is 满意."""


def answer_text(session: Session, loaded: Loaded, text: str) -> Outcome:
    """Read text as the answer the screen expects; errors and re-asks come as a new message."""
    screen = loaded.screen()
    items = loaded.instrument.items
    locale = loaded.locale
    if screen.stage.name in (StageName.REVIEW, StageName.PICK, StageName.CONFIRM) or (
        screen.position >= len(items)
    ):
        return resend(loaded, notice=t("answering.use_buttons", locale))
    item = items[screen.position]
    try:
        _read_text_answer(session, loaded, item, screen.stage, text)
    except AnswerError as error:
        return resend(loaded, notice=_error_text(error, item, locale, text))
    except _ButtonsExpected as expected:
        return resend(loaded, notice=expected.notice)
    return resend(loaded)


class _ButtonsExpected(Exception):
    """The screen waits for a tap, not for this text; ``notice`` says what to do."""

    def __init__(self, notice: str) -> None:
        super().__init__(notice)
        self.notice = notice


def _read_text_answer(
    session: Session, loaded: Loaded, item: Item, stage: Stage, text: str
) -> None:
    """Store what the text means on this screen (AnswerError when it does not fit)."""
    locale = loaded.locale
    if stage.name is StageName.REASON:
        amount = stage.amount or Decimal(0)
        save(session, loaded, item, AnswerValue(deduction=amount, reason=text))
    elif item.kind == "text" and stage.name is StageName.QUESTION:
        save(session, loaded, item, AnswerValue(text=text))
    elif item.kind == "points" and stage.name is StageName.QUESTION:
        save(session, loaded, item, AnswerValue(points=parse_number(text)))
    elif item.kind == "choice" and stage.name is StageName.QUESTION:
        save(session, loaded, item, AnswerValue(choice=_typed_option(item, text, locale)))
    elif item.kind == "deduction" and stage.name is StageName.QUESTION:
        try:
            amount = parse_number(text)
        except AnswerError:
            # A reason typed before choosing an amount: say how to deduct, keep nothing.
            raise _ButtonsExpected(t("answering.hint.deduct_first", locale)) from None
        _typed_deduction(session, loaded, item, stage, amount)
    elif item.kind == "deduction":
        _typed_deduction(session, loaded, item, stage, parse_number(text))
    else:
        raise _ButtonsExpected(t("answering.use_buttons", locale))


def _typed_option(item: Item, text: str, locale: str) -> str:
    """The option meant by a typed text: its words (in either language) or its number."""
    typed = unicodedata.normalize("NFKC", text).strip().strip(TYPED_PUNCTUATION).casefold()
    for number, option in enumerate(item.options, start=1):
        names = {option.text.zh.casefold(), option.text.en.casefold(), str(number)}
        if typed in names:
            return option.id
    notice = t("answering.hint.choice_typed", locale, count=len(item.options))
    raise _ButtonsExpected(notice)


def _typed_deduction(
    session: Session, loaded: Loaded, item: Item, stage: Stage, amount: Decimal
) -> None:
    """A typed deduction: 0 is 不扣分, more asks for the reason next."""
    if amount == 0:
        save(session, loaded, item, AnswerValue(deduction=amount))
        return
    # The reason comes later; check the amount now with a placeholder reason.
    validate_answer(item, AnswerValue(deduction=amount, reason="-"))
    move(session, loaded, loaded.screen().position, stage.but(StageName.REASON, amount))


def _error_text(error: AnswerError, item: Item, locale: str, text: str) -> str:
    """The catalog text for an AnswerError, its numbers written plainly.

    A deduction out of range names the same range as the prompt (0.5 到 3 分), not the
    validator's 0: typing 0 means 不扣分, which is not an error.
    """
    params = {
        name: format_amount(value) if isinstance(value, Decimal) else value
        for name, value in error.params.items()
    }
    params.setdefault("length", len(text.strip()))
    if item.kind == "deduction" and error.code == "out_of_range":
        least, most = deduction_range(item)
        return t("answering.error.deduction_range", locale, min=least, max=most)
    return t(f"answering.error.{error.code}", locale, **params)
