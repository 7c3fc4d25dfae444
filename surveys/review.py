"""After the proposals: county review, the announced tally, 两新 re-grading, the 整改台账.

Pure rules as data and small functions; storage persists the states and audits each step.
Sections refer to ``docs/rules.md``.

Roles: ``GradingRole`` names the two roles of the grading process (工作组组长, the county
reviewer); its values are the ``surveys.categories.Role`` values a roster gives them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from surveys.categories import Category, Role
from surveys.grading import require_reason
from surveys.rules import GRADE_ORDER, Grade


class GradingRole(StrEnum):
    """Roles of the grading process; the values are ``Role`` values (roster roles)."""

    WORK_GROUP_LEADER = "work_group_leader"  # 工作组组长 (seed 000 一.5: 镇工作组领导签字)
    COUNTY_REVIEWER = "county_reviewer"  # 县委组织部审核 (seed 001 六)


# ---------------------------------------------------------------------------
# County review (docs/rules.md §9)
# ---------------------------------------------------------------------------


class ReviewState(StrEnum):
    """Where a decided grade stands on its way to final."""

    DECIDED = "decided"  # 镇党委评定 (seed 001 六.4)
    REPORTED = "reported"  # 上报 with the 附件4 workbook (seed 001 六.4)
    APPROVED = "approved"  # 县委组织部审核 passed
    RETURNED = "returned"  # sent back with a reason (seed 000 一.9: 等市里反馈意见)
    FINAL = "final"  # 正式确定, announced to the branch (seed 000 一.9–10)


class ReviewAction(StrEnum):
    """One step of the review, each a command and an audit row."""

    REPORT = "report"
    APPROVE = "approve"
    RETURN = "return"
    REDECIDE = "redecide"  # the committee decides again after a return
    FINALIZE = "finalize"


# (state, action) → (new state, who may do it, reason required)
TRANSITIONS: Mapping[tuple[ReviewState, ReviewAction], tuple[ReviewState, str, bool]] = {
    (ReviewState.DECIDED, ReviewAction.REPORT): (ReviewState.REPORTED, Role.ORGANIZER, False),
    (ReviewState.REPORTED, ReviewAction.APPROVE): (
        ReviewState.APPROVED,
        GradingRole.COUNTY_REVIEWER,
        False,
    ),
    (ReviewState.REPORTED, ReviewAction.RETURN): (
        ReviewState.RETURNED,
        GradingRole.COUNTY_REVIEWER,
        True,
    ),
    (ReviewState.RETURNED, ReviewAction.REDECIDE): (ReviewState.DECIDED, Role.ORGANIZER, True),
    (ReviewState.APPROVED, ReviewAction.FINALIZE): (ReviewState.FINAL, Role.ORGANIZER, False),
}

# A decision may be unlocked (with a reason) only while it is still the township's.
UNLOCKABLE = frozenset({ReviewState.DECIDED, ReviewState.RETURNED})


class ReviewError(ValueError):
    """A review step that is not allowed; ``code`` names why for the message catalog."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class ReviewStep:
    """One allowed step, as storage records it in the audit log."""

    action: ReviewAction
    before: ReviewState
    after: ReviewState
    person_id: int
    role: str
    reason: str | None


def review_step(
    state: ReviewState,
    action: ReviewAction,
    *,
    person_id: int,
    roles: Collection[str],
    reason: str | None = None,
) -> ReviewStep:
    """Check one step: allowed from this state, by one of the person's roles, reason if due."""
    transition = TRANSITIONS.get((state, action))
    if transition is None:
        raise ReviewError("not_allowed_now")
    after, role, needs_reason = transition
    if role not in roles:
        raise ReviewError("wrong_role")
    text = (reason or "").strip() or None
    if needs_reason and text is None:
        raise ReviewError("reason_required")
    return ReviewStep(action, state, after, person_id, role, text)


def may_unlock(state: ReviewState) -> bool:
    """Only a decision not yet reported (or returned) can be unlocked by the township."""
    return state in UNLOCKABLE


# ---------------------------------------------------------------------------
# The announced tally (docs/rules.md §10)
# ---------------------------------------------------------------------------


class Signer(StrEnum):
    """The two signatures of the 测评汇总表 (seed 000 一.5)."""

    SECRETARY = "secretary"  # 村党组织书记
    WORK_GROUP_LEADER = "work_group_leader"  # 镇工作组领导


_SIGNER_ROLE: Mapping[Signer, str] = {
    Signer.SECRETARY: Role.SECRETARY,
    Signer.WORK_GROUP_LEADER: GradingRole.WORK_GROUP_LEADER,
}


def may_sign(signer: Signer, roles: Collection[str]) -> bool:
    """The person must hold that role for the branch; an inspector is not the group leader."""
    return _SIGNER_ROLE[signer] in roles


@dataclass(frozen=True)
class AnnouncedTally:
    """The satisfaction tally as announced at the branch meeting (当场统计并公布).

    Frozen at /publish; later ballots change the live tally, never this record. With
    fewer ballots than the threshold the numbers are None (privacy, §7), as announced.
    """

    round_id: int
    org_id: int
    announced_at: datetime  # UTC
    ballots: int
    respondents: Mapping[str, int]  # audience → respondents at that moment
    satisfaction_score: Decimal | None
    rates: Mapping[str, Decimal] | None  # 满意率, 知晓率, 参与率
    distribution: Mapping[str, Mapping[str, int]] | None = field(default=None)

    def digest(self) -> str:
        """SHA-256 of the record's canonical JSON: what the two signatures sign."""
        payload = {
            "round_id": self.round_id,
            "org_id": self.org_id,
            "announced_at": _utc_text(self.announced_at),
            "ballots": self.ballots,
            "respondents": dict(sorted(self.respondents.items())),
            "satisfaction_score": _text(self.satisfaction_score),
            "rates": None if self.rates is None else {k: _text(v) for k, v in self.rates.items()},
            "distribution": None
            if self.distribution is None
            else {q: dict(sorted(o.items())) for q, o in sorted(self.distribution.items())},
        }
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _text(value: Decimal | None) -> str | None:
    """A number as its value, not its spelling: 72.00, 72.0 and 72 are all "72"."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def _utc_text(moment: datetime) -> str:
    """An instant in UTC (a naive time is UTC, as every stored time is)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat()


def fully_signed(signatures: Mapping[Signer, int]) -> bool:
    """Both signed, and by two different people."""
    signers = [signatures.get(s) for s in Signer]
    return None not in signers and len(set(signers)) == len(signers)


# ---------------------------------------------------------------------------
# Quarterly re-grading of 两新 organizations (docs/rules.md §11)
# ---------------------------------------------------------------------------


class RoundKind(StrEnum):
    """The yearly grading, or a quarterly re-grading of 两新 organizations (seed 002)."""

    ANNUAL = "annual"
    QUARTERLY_REGRADE = "quarterly_regrade"


REGRADE_CATEGORIES = frozenset({Category.ENTERPRISE, Category.SOCIAL})


class Movement(StrEnum):
    """How a grade moved against the previous one."""

    UP = "up"  # 晋位
    DOWN = "down"  # 降级
    SAME = "same"  # 持平
    FIRST = "first"  # 首次定级: no previous grade


def movement(previous: Grade | None, current: Grade) -> Movement:
    """晋位 / 降级 / 持平 by the order 好 > 较好 > 一般 > 较差."""
    if previous is None:
        return Movement.FIRST
    before, after = GRADE_ORDER.index(previous), GRADE_ORDER.index(current)
    if after < before:
        return Movement.UP
    if after > before:
        return Movement.DOWN
    return Movement.SAME


@dataclass(frozen=True)
class Regrade:
    """One 两新 branch in a quarterly re-grading."""

    org_id: int
    previous: Grade | None
    current: Grade | None  # None: sampled and not decided yet
    sampled: bool
    movement: Movement | None


def regrade(
    previous: Mapping[int, Grade | None],
    sample: Collection[int],
    decided: Mapping[int, Grade],
) -> list[Regrade]:
    """Sampled branches get their new grade; the rest carry the previous one forward."""
    strays = (set(sample) | set(decided)) - set(previous)
    if strays:
        raise ValueError(f"branches {sorted(strays)} are not in the re-graded pool")
    if set(decided) - set(sample):
        raise ValueError("only sampled branches are re-graded")
    rows: list[Regrade] = []
    for org_id in sorted(previous):
        before = previous[org_id]
        if org_id in sample:
            after = decided.get(org_id)
            moved = movement(before, after) if after is not None else None
            rows.append(Regrade(org_id, before, after, True, moved))
        else:
            moved = Movement.SAME if before is not None else None
            rows.append(Regrade(org_id, before, before, False, moved))
    return rows


def quarter_of(day: date) -> tuple[int, int]:
    """(year, quarter 1–4) of a local date: one re-grading round per quarter."""
    return day.year, (day.month - 1) // 3 + 1


# ---------------------------------------------------------------------------
# 整改台账 (docs/rules.md §12)
# ---------------------------------------------------------------------------

KEY_PROBLEMS = (2, 3)  # seed 002 三(三)1: 确定2-3个突出问题


def key_problems_check(count: int) -> str | None:
    """None when a branch has 2–3 key problems, else ``too_few`` or ``too_many``."""
    low, high = KEY_PROBLEMS
    if count < low:
        return "too_few"
    if count > high:
        return "too_many"
    return None


# The township checks and closes items (seed 003 三(一): 由乡(镇、街道)…逐项验收"销号").
CLOSING_ROLES = frozenset({Role.ORGANIZER})


@dataclass(frozen=True)
class Closure:
    """Closing (销号) one ledger item after the township checked it."""

    item_id: int
    person_id: int
    note: str  # 验收意见: what was checked
    closed_at: datetime  # UTC


def close_item(
    item_id: int, *, person_id: int, roles: Collection[str], note: str, closed_at: datetime
) -> Closure:
    """Only the township closes an item, and says what it checked; never the branch itself."""
    if not CLOSING_ROLES & set(roles):
        raise ReviewError("township_only")
    try:
        checked = require_reason(note)
    except ValueError:
        raise ReviewError("note_required") from None
    return Closure(item_id, person_id, checked, closed_at)
