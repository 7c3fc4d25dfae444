"""What a typed message means on the draft's current screen (问卷作答).

A number for a points or deduction question, the reason of a deduction, or free text;
anything else re-sends the screen with a hint to use the buttons.
"""

from __future__ import annotations

from decimal import Decimal

from bot.answer_state import Loaded, Outcome
from bot.answer_taps import move, resend, save
from bot.callbacks import Stage, StageName
from storage.db import Session
from surveys.i18n import t
from surveys.instruments import AnswerError, AnswerValue, Item, parse_number, validate_answer


def answer_text(session: Session, loaded: Loaded, text: str) -> Outcome:
    """Read text as the answer the screen expects; errors and re-asks come as a new message."""
    screen = loaded.screen()
    items = loaded.instrument.items
    if screen.stage.name in (StageName.REVIEW, StageName.CONFIRM) or screen.position >= len(items):
        return resend(loaded, notice=t("answering.use_buttons", loaded.locale))
    item = items[screen.position]
    try:
        _read_text_answer(session, loaded, item, screen.stage, text)
    except AnswerError as error:
        return resend(loaded, notice=_error_text(error, loaded.locale, text))
    except _ButtonsExpected:
        return resend(loaded, notice=t("answering.use_buttons", loaded.locale))
    return resend(loaded)


class _ButtonsExpected(Exception):
    """The screen waits for a tap, not for text."""


def _read_text_answer(
    session: Session, loaded: Loaded, item: Item, stage: Stage, text: str
) -> None:
    """Store what the text means on this screen (AnswerError when it does not fit)."""
    if stage.name is StageName.REASON:
        amount = stage.amount or Decimal(0)
        save(session, loaded, item, AnswerValue(deduction=amount, reason=text))
    elif item.kind == "text" and stage.name is StageName.QUESTION:
        save(session, loaded, item, AnswerValue(text=text))
    elif item.kind == "points" and stage.name is StageName.QUESTION:
        save(session, loaded, item, AnswerValue(points=parse_number(text)))
    elif item.kind == "deduction":
        _typed_deduction(session, loaded, item, stage, parse_number(text))
    else:
        raise _ButtonsExpected


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


def _error_text(error: AnswerError, locale: str, text: str) -> str:
    """The catalog text for an AnswerError, its numbers written plainly."""
    params = {
        name: format(value.normalize(), "f") if isinstance(value, Decimal) else value
        for name, value in error.params.items()
    }
    params.setdefault("length", len(text.strip()))
    return t(f"answering.error.{error.code}", locale, **params)
