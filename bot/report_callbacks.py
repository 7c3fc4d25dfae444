"""Callback data of the report buttons: typed taps carrying ids, decoded strictly.

Shapes (all ``rp:``-prefixed, far below Telegram's 64-byte limit):

* ``rp:x`` — the full workbook (/export).
* ``rp:<view>:<org>`` — a branch's tally (``t``), coverage (``c``), grade detail (``d``),
  publish sheet (``p``) or ledger (``r``); confirm its proposal (``g``) or add a ledger line
  (``ra``); a secretary's WeChat notice (``wn``) or invitation links (``wl``) of the branch.
* ``rp:o:<org>:<grade>`` — override the proposal with another grade.
* ``rp:s:<org>:<s|l>[:<digest>]`` — sign the announced tally as secretary (``s``) or work-group
  leader (``l``): without a digest it asks to confirm, with the first 16 hex digits of the
  record's digest it signs that record (docs/rules.md §10).
* ``rp:k:<item>`` — close (销号) a ledger line.
* ``rp:dg:<org>:<grade>:<step>`` — a step of deciding a grade (docs/rules.md §8): see the
  effect first (``a``), lock (``l``), give a reason and lock (``r``), ask for an exception
  (``e``), confirm another organizer's exception (``c``).
* ``rp:u:<org>`` — unlock a locked grade (the reason follows as text).
* ``rp:f:<flag>:<step>:<n>`` — a step of recording a veto (``v``) or a members-only branch
  (``m``): a page of the branch picker (``p``, n the page from 0), choose branch n (``b``),
  skip the note (``s``) or confirm (``y``) the step whose token is n, cancel (``n``, n 0).
* ``rp:fv:<org>:<n>`` — veto condition number n (1-based, ``surveys.vetoes``) for a branch.

A tap carries the ids it acts on, never a name: the handler re-checks the asker's scope
for that id. Anything our buttons do not produce raises :class:`BadReportCallback`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from surveys.branch_buttons import INVITES_CODE, NOTICE_CODE
from surveys.rules import Grade
from surveys.vetoes import veto_by_number

PREFIX = "rp:"
CALLBACK_PATTERN = r"^rp:"
MAX_CALLBACK_BYTES = 64


class BranchView(StrEnum):
    """A tap that acts on one branch, by its id."""

    TALLY = "t"
    COVERAGE = "c"
    GRADE = "d"
    CONFIRM = "g"
    PUBLISH = "p"
    LEDGER = "r"
    LEDGER_ADD = "ra"
    NOTICE = NOTICE_CODE  # 📋 生成微信群通知 (surveys.branch_buttons: the jobs draw it too)
    INVITES = INVITES_CODE  # 🔗 未登记人员邀请链接


class Capacity(StrEnum):
    """In which capacity a sign-off button signs."""

    SECRETARY = "s"
    WORK_GROUP_LEADER = "l"

    @property
    def role(self) -> str:
        """The role stored with the signature (``storage.grading.SIGN_ROLES``)."""
        return "secretary" if self is Capacity.SECRETARY else "work_group_leader"


@dataclass(frozen=True)
class ExportTap:
    """Send the workbook of every branch the asker may see."""


@dataclass(frozen=True)
class BranchTap:
    """Show or act on one branch."""

    view: BranchView
    org_id: int


@dataclass(frozen=True)
class OverrideTap:
    """Override a branch's proposed grade (the reason follows as text)."""

    org_id: int
    grade: Grade


@dataclass(frozen=True)
class SignTap:
    """Sign a branch's summary sheet."""

    org_id: int
    capacity: Capacity
    digest: str | None = None  # the record confirmed; None: ask to confirm first


@dataclass(frozen=True)
class CloseTap:
    """Close one ledger line."""

    item_id: int


class DecideStep(StrEnum):
    """A step of deciding one branch's grade."""

    ASK = "a"  # show the effect on the pool's quotas and vetoes before any lock
    LOCK = "l"  # lock the proposal (no rule broken)
    REASON = "r"  # another grade: the reason follows as text, then lock
    EXCEPTION = "e"  # a rule is broken: the reason follows, a second organizer confirms
    CONFIRM_EXCEPTION = "c"  # the second organizer confirms and the grade is locked


@dataclass(frozen=True)
class DecideTap:
    """A step of deciding a branch's grade."""

    org_id: int
    grade: Grade
    step: DecideStep


@dataclass(frozen=True)
class UnlockTap:
    """Unlock a branch's locked grade (the reason follows as text)."""

    org_id: int


class Flag(StrEnum):
    """What an organizer records about a branch with a button flow."""

    VETO = "v"  # a 高压线 condition (docs/rules.md §5.6)
    MEMBERS_ONLY = "m"  # 以全体党员测评为准 (docs/rules.md §6.2)


class FlagStep(StrEnum):
    """A step of a flag's flow."""

    PAGE = "p"  # a page of the branch picker (the number is the page, from 0)
    BRANCH = "b"  # the branch is chosen
    SKIP = "s"  # no note
    CONFIRM = "y"  # record what the confirmation showed
    CANCEL = "n"  # record nothing


MAX_PAGE = 999


@dataclass(frozen=True)
class FlagTap:
    """A step of recording a veto or a members-only branch.

    ``number`` is a page (``PAGE``), a branch id (``BRANCH``), the open step's token (``SKIP``,
    ``CONFIRM``: ``bot.reports.flag_flows`` keeps it with the step) or 0 (``CANCEL``).
    """

    flag: Flag
    step: FlagStep
    number: int


@dataclass(frozen=True)
class VetoConditionTap:
    """A veto condition chosen for a branch, by its number in ``surveys.vetoes``."""

    org_id: int
    number: int


ReportTap = (
    ExportTap
    | BranchTap
    | OverrideTap
    | SignTap
    | CloseTap
    | DecideTap
    | UnlockTap
    | FlagTap
    | VetoConditionTap
)


class BadReportCallback(ValueError):
    """Callback data our report buttons never produce: forged, garbled or from another bot."""


# --- Encoding ------------------------------------------------------------------------------


def encode(tap: ReportTap) -> str:
    """The callback data of a report button."""
    match tap:
        case ExportTap():
            body = "x"
        case BranchTap(view=view, org_id=org_id):
            body = f"{view.value}:{org_id}"
        case OverrideTap(org_id=org_id, grade=grade):
            body = f"o:{org_id}:{grade.value}"
        case SignTap(org_id=org_id, capacity=capacity, digest=digest):
            body = f"s:{org_id}:{capacity.value}" + (f":{digest}" if digest else "")
        case CloseTap(item_id=item_id):
            body = f"k:{item_id}"
        case DecideTap(org_id=org_id, grade=grade, step=step):
            body = f"dg:{org_id}:{grade.value}:{step.value}"
        case UnlockTap(org_id=org_id):
            body = f"u:{org_id}"
        case FlagTap(flag=flag, step=step, number=number):
            body = f"f:{flag.value}:{step.value}:{number}"
        case VetoConditionTap(org_id=org_id, number=number):
            body = f"fv:{org_id}:{number}"
    data = PREFIX + body
    if len(data.encode()) > MAX_CALLBACK_BYTES:  # a bug, never user input
        raise ValueError(f"callback data longer than {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


# --- Decoding ------------------------------------------------------------------------------

_ID = r"[1-9][0-9]{0,17}"
_VIEWS = "|".join(sorted((view.value for view in BranchView), key=len, reverse=True))
_GRADES = "|".join(grade.value for grade in Grade)
_CAPACITIES = "|".join(capacity.value for capacity in Capacity)
_EXPORT = re.compile(r"^rp:x$")
_BRANCH = re.compile(rf"^rp:(?P<view>{_VIEWS}):(?P<org>{_ID})$")
_OVERRIDE = re.compile(rf"^rp:o:(?P<org>{_ID}):(?P<grade>{_GRADES})$")
_SIGN = re.compile(
    rf"^rp:s:(?P<org>{_ID}):(?P<capacity>{_CAPACITIES})(?::(?P<digest>[0-9a-f]{{16}}))?$"
)
_CLOSE = re.compile(rf"^rp:k:(?P<item>{_ID})$")
_STEPS = "|".join(step.value for step in DecideStep)
_DECIDE = re.compile(rf"^rp:dg:(?P<org>{_ID}):(?P<grade>{_GRADES}):(?P<step>{_STEPS})$")
_UNLOCK = re.compile(rf"^rp:u:(?P<org>{_ID})$")
_FLAGS = "|".join(flag.value for flag in Flag)
_FLAG_STEPS = "|".join(step.value for step in FlagStep)
_FLAG = re.compile(rf"^rp:f:(?P<flag>{_FLAGS}):(?P<step>{_FLAG_STEPS}):(?P<number>0|{_ID})$")
_VETO_CONDITION = re.compile(rf"^rp:fv:(?P<org>{_ID}):(?P<number>[1-9])$")


def decode(data: str | None) -> ReportTap:
    """Read report callback data; BadReportCallback for anything our buttons do not produce."""
    if not data or len(data.encode()) > MAX_CALLBACK_BYTES:
        raise BadReportCallback("empty or too long")
    if _EXPORT.match(data):
        return ExportTap()
    if match := _BRANCH.match(data):
        return BranchTap(BranchView(match["view"]), int(match["org"]))
    if match := _OVERRIDE.match(data):
        return OverrideTap(int(match["org"]), Grade(match["grade"]))
    if match := _SIGN.match(data):
        return SignTap(int(match["org"]), Capacity(match["capacity"]), match["digest"])
    if match := _CLOSE.match(data):
        return CloseTap(int(match["item"]))
    if match := _DECIDE.match(data):
        return DecideTap(int(match["org"]), Grade(match["grade"]), DecideStep(match["step"]))
    if match := _UNLOCK.match(data):
        return UnlockTap(int(match["org"]))
    if match := _FLAG.match(data):
        return _flag_tap(Flag(match["flag"]), FlagStep(match["step"]), int(match["number"]))
    if (match := _VETO_CONDITION.match(data)) and veto_by_number(int(match["number"])):
        return VetoConditionTap(int(match["org"]), int(match["number"]))
    raise BadReportCallback("unknown shape")


def _flag_tap(flag: Flag, step: FlagStep, number: int) -> FlagTap:
    """A page from 0 to MAX_PAGE; 0 for cancel (it needs no branch); else a branch id."""
    if step is FlagStep.PAGE:
        wrong = number > MAX_PAGE
    else:
        wrong = (number != 0) if step is FlagStep.CANCEL else (number == 0)
    if wrong:
        raise BadReportCallback("number out of range")
    return FlagTap(flag, step, number)
