"""Callback data: short, exact to decode, and checked against the screen the draft shows."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.callbacks import (
    MAX_CALLBACK_BYTES,
    Action,
    AnswerTap,
    BadCallback,
    BranchListTap,
    Screen,
    Stage,
    StageName,
    StaleTap,
    StartTap,
    check_tap,
    decode,
    encode_answer,
    encode_branch_list,
    encode_start,
)
from surveys.instruments import Instrument, get_instrument

SATISFACTION = get_instrument("satisfaction")
SELF_EVALUATION = get_instrument("self_evaluation")
INSPECTION = get_instrument("inspection_village")
BIG_ID = 10**17  # far beyond any real id, still within BigInteger


def test_every_shape_decodes_to_what_was_encoded() -> None:
    assert decode(encode_start(42)) == StartTap(42)
    assert decode(encode_branch_list(7)) == BranchListTap(7)
    assert decode(encode_answer(42, 3, 5, Action.CHOOSE, 2)) == AnswerTap(
        42, 3, 5, Action.CHOOSE, "2"
    )
    assert decode(encode_answer(42, 0, 0, Action.SUBMIT)) == AnswerTap(42, 0, 0, Action.SUBMIT)


def test_the_longest_answer_data_fits_telegrams_64_bytes() -> None:
    data = encode_answer(BIG_ID, 999_999_999, 999_999_999, Action.AMOUNT, "999999.5")
    assert len(data.encode()) <= MAX_CALLBACK_BYTES
    assert decode(data) == AnswerTap(BIG_ID, 999_999_999, 999_999_999, Action.AMOUNT, "999999.5")


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "hello",
        "a:zzz",
        "a:1:2:3",  # no action
        "a:01:0:0:c:0",  # leading zero: never written by us
        "a:0:0:0:k",  # assignment ids start at 1
        "a:1:0:0:z",  # unknown action
        "a:1:0:0:c",  # a choice needs its option
        "a:1:0:0:b:1",  # back takes no argument
        "a:1:0:0:c:-1",
        "s:-1",
        "s:1:2",
        "l:x",
        "a:1:0:0:k" + " " * 60,  # over 64 bytes
    ],
)
def test_data_our_buttons_never_carry_is_refused(data: str | None) -> None:
    with pytest.raises(BadCallback):
        decode(data)


def test_a_stage_survives_the_trip_through_the_database() -> None:
    stage = Stage(StageName.REASON, Decimal("2.5"), from_review=True)
    assert stage.encode() == "r/reason:2.5"
    assert Stage.parse(stage.encode()) == stage
    assert Stage.parse("question") == Stage()
    assert Stage.parse("review") == Stage(StageName.REVIEW)


@pytest.mark.parametrize("stored", [None, "", "nonsense", "reason", "reason:abc"])
def test_an_unreadable_stage_means_the_plain_question(stored: str | None) -> None:
    assert Stage.parse(stored) == Stage()


def test_the_longest_stage_fits_the_column() -> None:
    stage = Stage(StageName.REASON, Decimal("999999.5"), from_review=True)
    assert len(stage.encode()) <= 30


def tap(
    action: Action, arg: str | int | None = None, *, revision: int = 4, position: int = 0
) -> AnswerTap:
    """A tap on a button drawn for assignment 9."""
    decoded = decode(encode_answer(9, revision, position, action, arg))
    assert isinstance(decoded, AnswerTap)
    return decoded


QUESTION_1 = Screen(4, 0, Stage())


def test_a_tap_drawn_for_the_current_screen_passes() -> None:
    check_tap(tap(Action.CHOOSE, 2), SATISFACTION, QUESTION_1)


@pytest.mark.parametrize(
    ("revision", "position"),
    [(3, 0), (5, 0), (4, 1)],
    ids=["older revision", "newer revision", "other question"],
)
def test_a_button_from_another_screen_is_stale(revision: int, position: int) -> None:
    with pytest.raises(StaleTap):
        check_tap(
            tap(Action.CHOOSE, 0, revision=revision, position=position),
            SATISFACTION,
            QUESTION_1,
        )


@pytest.mark.parametrize(
    ("instrument", "screen", "action", "arg"),
    [
        (SATISFACTION, QUESTION_1, Action.CHOOSE, 3),  # q1 has three options
        (SATISFACTION, QUESTION_1, Action.POINTS, "5"),  # not a points item
        (SATISFACTION, QUESTION_1, Action.SKIP, None),  # q1 is required
        (SATISFACTION, QUESTION_1, Action.BACK, None),  # nothing before question 1
        (SATISFACTION, QUESTION_1, Action.CONFIRM, None),  # not on a question screen
        (SATISFACTION, Screen(4, 0, Stage(StageName.REVIEW)), Action.EDIT, 9),  # 9 items: 0..8
        (SELF_EVALUATION, QUESTION_1, Action.POINTS, "20.5"),  # leader is worth 20
        (SELF_EVALUATION, QUESTION_1, Action.POINTS, "7.3"),  # off the 0.5 step
        (INSPECTION, QUESTION_1, Action.AMOUNT, "1"),  # amounts only after 扣分
        (INSPECTION, Screen(4, 0, Stage(StageName.AMOUNT)), Action.AMOUNT, "3.5"),  # worth 3
        (SATISFACTION, Screen(4, 99, Stage()), Action.CHOOSE, 0),  # no item 100
    ],
)
def test_a_tap_that_no_screen_of_ours_draws_is_forged(
    instrument: Instrument, screen: Screen, action: Action, arg: str | int | None
) -> None:
    with pytest.raises(BadCallback):
        check_tap(
            tap(action, arg, revision=screen.revision, position=screen.position),
            instrument,
            screen,
        )


def test_an_optional_question_can_be_skipped_and_a_deduction_started() -> None:
    last = len(SATISFACTION.items) - 1
    check_tap(tap(Action.SKIP, position=last), SATISFACTION, Screen(4, last, Stage()))
    check_tap(tap(Action.DEDUCT), INSPECTION, QUESTION_1)
    amount_screen = Screen(4, 0, Stage(StageName.AMOUNT))
    check_tap(tap(Action.AMOUNT, "2.5"), INSPECTION, amount_screen)
