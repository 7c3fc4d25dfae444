"""Callback data of the answering buttons: short strings, decoded strictly, never trusted.

Three shapes, all far below Telegram's 64-byte limit:

* ``a:<assignment>:<revision>:<position>:<action>[:<arg>]`` — a tap inside a survey. The
  revision and position pin the exact screen the button was drawn on, so a button from an
  old message or a second tap of the same button is recognised as stale.
* ``s:<assignment>`` — start or resume a survey from the to-do list.
* ``l:<round>`` — an inspector's list of assigned branches in a round.

What the next tap or text *means* is the Draft's ``stage`` (see ``Stage``), never memory,
so a restart or a second bot process changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from surveys.instruments import Instrument, Item

# The start button is shared with the jobs' reminders, so its codec lives below both.
from surveys.start_links import MAX_CALLBACK_BYTES as MAX_CALLBACK_BYTES
from surveys.start_links import decode_start
from surveys.start_links import encode_start as encode_start


class Action(StrEnum):
    """What a button inside a survey does (one letter keeps the data short)."""

    CHOOSE = "c"  # arg: option index of a choice item
    POINTS = "p"  # arg: amount for a points item
    NO_DEDUCTION = "n"  # 不扣分
    DEDUCT = "d"  # 扣分: ask how much
    AMOUNT = "m"  # arg: the deduction amount
    SKIP = "k"  # 跳过 an optional question
    BACK = "b"  # 上一题 (or back from the amount/reason prompt to the question)
    EDIT = "e"  # arg: position to change, from the picker (or the review)
    PICK = "o"  # ✏️ 修改某一题: open the picker of questions from the review
    REST = "r"  # 本部分其余各项均不扣分: no deduction on the rest of the section
    SUBMIT = "s"  # 提交: ask for confirmation
    CONFIRM = "y"  # 确认提交
    RETURN = "x"  # 返回修改: from the confirmation back to the review


class StageName(StrEnum):
    """Which screen a draft shows, i.e. what the next tap or text means."""

    QUESTION = "question"
    AMOUNT = "amount"  # how much to deduct on the item at the position
    REASON = "reason"  # the reason of a chosen deduction (amount kept in the stage)
    REVIEW = "review"
    PICK = "pick"  # which answer to change, picked from the review
    CONFIRM = "confirm"


@dataclass(frozen=True)
class Stage:
    """A draft's stage, stored as text: ``[r/]name[:amount]``; ``r/`` = return to review after."""

    name: StageName = StageName.QUESTION
    amount: Decimal | None = None
    from_review: bool = False

    def encode(self) -> str:
        """The text kept in ``Draft.stage`` (at most 30 characters)."""
        prefix = "r/" if self.from_review else ""
        suffix = f":{format_amount(self.amount)}" if self.amount is not None else ""
        return f"{prefix}{self.name.value}{suffix}"

    @classmethod
    def parse(cls, text: str | None) -> Stage:
        """Read a stored stage; anything unreadable means the plain question screen."""
        raw = text or ""
        from_review = raw.startswith("r/")
        name_text, _, amount_text = raw.removeprefix("r/").partition(":")
        try:
            name = StageName(name_text)
        except ValueError:
            return cls()
        amount = parse_amount(amount_text) if amount_text else None
        if name is StageName.REASON and amount is None:
            return cls(StageName.QUESTION, from_review=from_review)
        return cls(name, amount, from_review)

    def but(self, name: StageName, amount: Decimal | None = None) -> Stage:
        """The same stage (keeping the return-to-review flag) on another screen."""
        return replace(self, name=name, amount=amount)


@dataclass(frozen=True)
class AnswerTap:
    """A tap on a button inside a survey."""

    assignment_id: int
    revision: int
    position: int
    action: Action
    arg: str | None = None


@dataclass(frozen=True)
class StartTap:
    """Start or resume a survey from the to-do list."""

    assignment_id: int


@dataclass(frozen=True)
class BranchListTap:
    """Show an inspector the branches assigned to them in a round."""

    round_id: int


Tap = AnswerTap | StartTap | BranchListTap


class BadCallback(ValueError):
    """Callback data our buttons never produce: forged, garbled or from another bot."""


class StaleTap(Exception):
    """A genuine button drawn for an earlier screen (old message, double tap)."""


# --- Encoding ------------------------------------------------------------------------------


def encode_answer(
    assignment_id: int, revision: int, position: int, action: Action, arg: str | int | None = None
) -> str:
    """The data of a button inside a survey."""
    parts = ["a", str(assignment_id), str(revision), str(position), action.value]
    if arg is not None:
        parts.append(str(arg))
    return _checked(":".join(parts))


def encode_branch_list(round_id: int) -> str:
    """The data of a button that lists an inspector's branches."""
    return _checked(f"l:{round_id}")


def _checked(data: str) -> str:
    """The data, or ValueError when it would not fit a button (a bug, never user input)."""
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data longer than {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


# --- Decoding ------------------------------------------------------------------------------

_ID = r"[1-9][0-9]{0,17}"
_COUNT = r"(?:0|[1-9][0-9]{0,8})"
_ANSWER = re.compile(
    rf"^a:(?P<assignment>{_ID}):(?P<revision>{_COUNT}):(?P<position>{_COUNT})"
    r":(?P<action>[a-z])(?::(?P<arg>[0-9.]{1,12}))?$"
)
_BRANCHES = re.compile(rf"^l:(?P<round>{_ID})$")
_AMOUNT = re.compile(r"^(?:0|[1-9][0-9]{0,5})(?:\.[0-9]{1,2})?$")
_ARG_ACTIONS = {Action.CHOOSE, Action.POINTS, Action.AMOUNT, Action.EDIT}


def decode(data: str | None) -> Tap:
    """Read callback data; BadCallback for anything our buttons do not produce."""
    if not data or len(data.encode()) > MAX_CALLBACK_BYTES:
        raise BadCallback("empty or too long")
    if (assignment_id := decode_start(data)) is not None:
        return StartTap(assignment_id)
    if match := _BRANCHES.match(data):
        return BranchListTap(int(match["round"]))
    match = _ANSWER.match(data)
    if match is None:
        raise BadCallback("unknown shape")
    try:
        action = Action(match["action"])
    except ValueError:
        raise BadCallback("unknown action") from None
    arg = match["arg"]
    if (arg is not None) != (action in _ARG_ACTIONS):
        raise BadCallback("argument does not fit the action")
    return AnswerTap(
        int(match["assignment"]), int(match["revision"]), int(match["position"]), action, arg
    )


def format_amount(amount: Decimal) -> str:
    """A score without exponent or trailing zeros: 3, 2.5, 0."""
    text = format(amount.normalize(), "f")
    return text if text != "-0" else "0"


def parse_amount(text: str) -> Decimal | None:
    """An amount as our buttons write it, or None."""
    return Decimal(text) if _AMOUNT.match(text) else None


# --- Checking a tap against the screen the draft shows -----------------------------------


@dataclass(frozen=True)
class Screen:
    """What the person should be looking at: the draft's revision, position and stage."""

    revision: int
    position: int
    stage: Stage


_ACTIONS_BY_STAGE: dict[StageName, frozenset[Action]] = {
    StageName.QUESTION: frozenset(
        {
            Action.CHOOSE,
            Action.POINTS,
            Action.NO_DEDUCTION,
            Action.DEDUCT,
            Action.REST,
            Action.SKIP,
            Action.BACK,
        }
    ),
    StageName.AMOUNT: frozenset({Action.AMOUNT, Action.BACK}),
    StageName.REASON: frozenset({Action.BACK}),
    StageName.REVIEW: frozenset({Action.PICK, Action.EDIT, Action.SUBMIT}),
    StageName.PICK: frozenset({Action.EDIT, Action.RETURN}),
    StageName.CONFIRM: frozenset({Action.CONFIRM, Action.RETURN}),
}

_ACTIONS_BY_KIND: dict[str, frozenset[Action]] = {
    "choice": frozenset({Action.CHOOSE}),
    "points": frozenset({Action.POINTS}),
    "deduction": frozenset({Action.NO_DEDUCTION, Action.DEDUCT, Action.AMOUNT, Action.REST}),
    "text": frozenset(),
}
_KIND_BOUND = frozenset(
    {Action.CHOOSE, Action.POINTS, Action.NO_DEDUCTION, Action.DEDUCT, Action.AMOUNT, Action.REST}
)


def check_tap(tap: AnswerTap, instrument: Instrument, screen: Screen) -> None:
    """Raise StaleTap for a button of an earlier screen, BadCallback for one we never drew."""
    if (tap.revision, tap.position) != (screen.revision, screen.position):
        raise StaleTap
    if tap.action not in _ACTIONS_BY_STAGE[screen.stage.name]:
        # Same revision and position but a button this screen never shows: not ours.
        raise BadCallback("action not on this screen")
    if screen.stage.name in (StageName.REVIEW, StageName.PICK, StageName.CONFIRM):
        if tap.action is Action.EDIT:
            _check_position_arg(tap.arg, len(instrument.items))
        return
    if not 0 <= tap.position < len(instrument.items):
        raise BadCallback("no item at this position")
    item = instrument.items[tap.position]
    _check_item_action(tap, item)
    if tap.action is Action.BACK and screen.stage == Stage() and tap.position == 0:
        raise BadCallback("no question before the first")


def _check_item_action(tap: AnswerTap, item: Item) -> None:
    """The action fits the item's kind and its argument exists on the item."""
    if tap.action in _KIND_BOUND and tap.action not in _ACTIONS_BY_KIND[item.kind]:
        raise BadCallback("action does not fit the item")
    if tap.action is Action.SKIP and item.required:
        raise BadCallback("a required item cannot be skipped")
    if tap.action is Action.CHOOSE:
        _check_position_arg(tap.arg, len(item.options))
    if tap.action in (Action.POINTS, Action.AMOUNT):
        amount = parse_amount(tap.arg or "")
        if amount is None or item.max_points is None or not 0 <= amount <= item.max_points:
            raise BadCallback("amount outside the item's range")
        if amount % item.step != 0:
            raise BadCallback("amount off the item's step")


def _check_position_arg(arg: str | None, count: int) -> None:
    """An index argument that points at one of ``count`` things."""
    if arg is None or not arg.isdigit() or not 0 <= int(arg) < count:
        raise BadCallback("index out of range")


def option_index(tap: AnswerTap) -> int:
    """The option index of a checked CHOOSE (or position of an EDIT) tap."""
    assert tap.arg is not None
    return int(tap.arg)


def tap_amount(tap: AnswerTap) -> Decimal:
    """The amount of a checked POINTS or AMOUNT tap."""
    amount = parse_amount(tap.arg or "")
    assert amount is not None
    return amount
