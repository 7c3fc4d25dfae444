"""All tables, with their constraints next to the fields.

Anonymity of the satisfaction survey (docs/rules.md §7; docs/anonymity.md)
------------------------------------------------------------------------------
Whoever reads the database — every column, PostgreSQL's ``xmin``/``ctid`` and dead tuples,
SQLite's row ids and WAL — must not learn one person's choices or suggestion:

* While someone is answering, their choices live in ``Draft`` (keyed by the assignment, so
  the bot resumes after a restart), but sealed with AES-GCM under a key held outside the
  database (``SealedJSON``, storage.sealing): at rest, in dead tuples and in the WAL the
  answers are ciphertext. Only the position and stage are in clear.
* Submitting deletes the draft, marks the ``Assignment`` submitted (``submitted_at`` stays
  NULL: not even the time is kept) and drops the sealed ballot into the branch's
  ``SatisfactionBox``, all in the voter's transaction.
* The counters — ``SatisfactionTally`` (round, branch, question, option → count),
  ``SatisfactionBallots`` and ``SatisfactionComments`` (a list reshuffled on every fold) —
  are written only by a fold (storage.ballots): a transaction of its own that touches no row
  naming a person, takes a random subset of the box and leaves at least the small-group
  threshold in it until the phase's deadline or the round's close. Every counter row of a
  branch is created at once in the form's order and rewritten by every fold. So no
  transaction id, row id, row order or before/after look at a report ties a person to a
  choice, and the counters move only in steps of at least the threshold.
* The tables of the counters, the box and the per-branch summaries live in
  ``storage.ballot_tables`` (re-exported here).
* When the round closes, the remainder is folded, the anonymous survey's drafts and the
  boxes are deleted and the freed space scrubbed (VACUUM; SQLite ``secure_delete`` and a
  truncating WAL checkpoint).

What remains is inherent to any tally and handled in the reports: a branch with fewer than
five ballots shows participation only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

import storage.naming  # the constraint names, set before any table below is defined
from storage.ballot_tables import (  # noqa: F401  (re-exported: every table is importable here)
    ResponseSummary,
    SatisfactionBallots,
    SatisfactionBox,
    SatisfactionComments,
    SatisfactionTally,
)
from storage.sealing import SealedJSON
from storage.types import UTCDateTime, utcnow
from surveys.categories import (
    AssignmentStatus,
    Audience,
    BoundVia,
    Category,
    InvitationKind,
    Phase,
    Role,
    RoundStatus,
    SignRole,
)
from surveys.review import ReviewAction, ReviewState
from surveys.rules import Grade

# The CHECK constraints repeat no list: each is built from the enum in surveys/ that the code
# uses, in the enum's order (the migration-vs-models test holds the SQL to the migration).
CATEGORIES = tuple(member.value for member in Category)
ROLES = tuple(member.value for member in Role)
AUDIENCES = tuple(member.value for member in Audience)
PHASES = tuple(member.value for member in Phase)
GRADES = tuple(member.value for member in Grade)


def _one_of(column: str, values: Iterable[str]) -> str:
    """SQL for a CHECK that a text column holds one of the given values (or enum members)."""
    quoted = ", ".join(f"'{value!s}'" for value in values)
    return f"{column} IN ({quoted})"


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def _when(**kwargs: Any) -> Any:
    return Field(default=None, sa_type=UTCDateTime, **kwargs)


def _score() -> Any:
    return Field(default=None, max_digits=7, decimal_places=2)


# --- Roster --------------------------------------------------------------------------------


class Organization(SQLModel, table=True):
    """A party organization: the grading committee (党委) or a branch it grades."""

    __table_args__ = (
        CheckConstraint(_one_of("category", CATEGORIES), name="category"),
        CheckConstraint("members >= 0 AND representatives >= 0 AND staff >= 0", name="counts"),
        CheckConstraint(
            "NOT members_only OR members_only_reason IS NOT NULL", name="members_only_reason"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    category: str = Field(max_length=20)
    parent_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    members: int = 0
    representatives: int = 0
    staff: int = 0
    has_workers_congress: bool = False
    members_only: bool = False
    members_only_reason: str | None = Field(default=None, max_length=500)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Person(SQLModel, table=True):
    """Someone on the roster, or an anonymous mass participant who came by branch link."""

    __table_args__ = (CheckConstraint("anonymous OR phone IS NOT NULL", name="phone_or_anonymous"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=60)
    phone: str | None = Field(default=None, max_length=20, unique=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    anonymous: bool = False
    created_at: datetime = _created()


class PersonRole(SQLModel, table=True):
    """One role of one person in one organization (a person can hold several)."""

    __tablename__ = "person_role"
    __table_args__ = (
        UniqueConstraint("person_id", "org_id", "role"),
        CheckConstraint(_one_of("role", ROLES), name="role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", index=True)
    role: str = Field(max_length=20)


class TelegramAccount(SQLModel, table=True):
    """The binding of one Telegram account to one person (one account is one person)."""

    __tablename__ = "telegram_account"
    __table_args__ = (CheckConstraint(_one_of("bound_via", BoundVia), name="via"),)

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", unique=True, ondelete="CASCADE")
    telegram_user_id: int = Field(sa_type=BigInteger, unique=True)
    chat_id: int = Field(sa_type=BigInteger)
    language: str | None = Field(default=None, max_length=10)
    bound_via: str = Field(max_length=20)
    bound_at: datetime = _created()
    blocked_at: datetime | None = _when()
    block_reason: str | None = Field(default=None, max_length=200)


class Invitation(SQLModel, table=True):
    """A deep-link token: personal (single use) or per branch for mass representatives."""

    __table_args__ = (
        CheckConstraint(_one_of("kind", InvitationKind), name="kind"),
        CheckConstraint(
            "(kind = 'personal' AND person_id IS NOT NULL)"
            " OR (kind = 'branch' AND org_id IS NOT NULL)",
            name="target",
        ),
        CheckConstraint("uses >= 0 AND uses <= max_uses", name="uses"),
    )

    token: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=10)
    person_id: int | None = Field(
        default=None, foreign_key="person.id", index=True, ondelete="CASCADE"
    )
    org_id: int | None = Field(default=None, foreign_key="organization.id", index=True)
    round_id: int | None = Field(default=None, foreign_key="round.id")
    max_uses: int = 1
    uses: int = 0
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    created_at: datetime = _created()
    last_used_at: datetime | None = _when()


# --- Rounds and assignments ----------------------------------------------------------------


class Round(SQLModel, table=True):
    """One grading round (测评轮次), with its pinned instruments and overrides."""

    __table_args__ = (CheckConstraint(_one_of("status", RoundStatus), name="status"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    status: str = Field(default="draft", max_length=10)
    # Per-round overrides of the defaults (targets, weights, reminder offsets, thresholds…),
    # validated by surveys when read; kept as JSON because they change by year, not by schema.
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _created()
    opened_at: datetime | None = _when()
    closed_at: datetime | None = _when()


class RoundPhase(SQLModel, table=True):
    """The window of one phase of a round: when it opens and its deadline."""

    __tablename__ = "round_phase"
    __table_args__ = (
        CheckConstraint(_one_of("phase", PHASES), name="phase"),
        CheckConstraint("opens_at IS NULL OR opens_at < deadline", name="window"),
    )

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    phase: str = Field(primary_key=True, max_length=20)
    opens_at: datetime | None = _when()
    deadline: datetime = Field(sa_type=UTCDateTime, nullable=False)


class RoundInstrument(SQLModel, table=True):
    """The instrument version a round pinned (a version never changes once pinned)."""

    __tablename__ = "round_instrument"

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    instrument_id: str = Field(primary_key=True, max_length=40)
    version: int
    phase: str = Field(max_length=20)


class Assignment(SQLModel, table=True):
    """Who answers which instrument about which branch in a round; also the participation record."""

    __table_args__ = (
        UniqueConstraint("round_id", "person_id", "instrument_id", "org_id"),
        # Participation per branch and audience (a tally) straight from the index, and one
        # branch's rows without the round's (0007).
        Index("ix_assignment_round_org", "round_id", "org_id", "audience", "status"),
        CheckConstraint(_one_of("audience", AUDIENCES), name="audience"),
        CheckConstraint(_one_of("status", AssignmentStatus), name="status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="round.id", index=True, ondelete="CASCADE")
    person_id: int = Field(foreign_key="person.id", index=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", index=True)
    instrument_id: str = Field(max_length=40)
    audience: str = Field(max_length=20)
    status: str = Field(default="pending", max_length=20)
    # Left NULL for the anonymous satisfaction survey (see the module docstring).
    submitted_at: datetime | None = _when()
    created_at: datetime = _created()


class AssignmentCount(SQLModel, table=True):
    """How many assignments of a branch and audience a round has, and how many are submitted.

    Exactly ``COUNT(*)`` and the submitted ones of ``assignment`` grouped by round, branch
    and audience, kept by database triggers on ``assignment`` (migration 0008), so no write
    site can forget it; a row goes in the statement that takes out its last assignment.
    A tally reads these rows instead of grouping every assignment of the round.

    Anonymity: a row says only how many of an audience have submitted, which the
    assignments' status already says person by person; never which choice anyone made.
    A voter's transaction adds one to it, as it marks the assignment submitted.
    """

    __tablename__ = "assignment_count"
    __table_args__ = (
        CheckConstraint("assigned >= 0", name="assigned"),
        CheckConstraint("submitted >= 0 AND submitted <= assigned", name="submitted"),
    )

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    audience: str = Field(primary_key=True, max_length=20)
    assigned: int
    submitted: int = 0


class Draft(SQLModel, table=True):
    """Answers given so far, saved at every tap so a restart loses nothing."""

    assignment_id: int = Field(foreign_key="assignment.id", primary_key=True, ondelete="CASCADE")
    # Sealed at rest (storage.sealing): the database never holds answers in progress in clear.
    answers: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(SealedJSON, nullable=False)
    )
    position: int = 0
    # What the next message from this person means: a question, a deduction amount, a reason…
    stage: str = Field(default="question", max_length=30)
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    # Bumped on every save so two bot processes cannot overwrite each other unseen.
    revision: int = 0
    updated_at: datetime = _created()


# --- Named responses (self-evaluation, inspection, superior scoring) -------------------------


class Response(SQLModel, table=True):
    """A submitted, named response (never used for the anonymous satisfaction survey)."""

    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="assignment.id", unique=True, ondelete="CASCADE")
    round_id: int = Field(foreign_key="round.id", index=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    instrument_id: str = Field(max_length=40)
    instrument_version: int
    total: Decimal | None = _score()
    submitted_at: datetime = _created()


class Answer(SQLModel, table=True):
    """One item of a named response, with its item score for SQL aggregation."""

    __table_args__ = (
        UniqueConstraint("response_id", "item_id"),
        CheckConstraint("deduction IS NULL OR deduction >= 0", name="deduction"),
    )

    id: int | None = Field(default=None, primary_key=True)
    response_id: int = Field(foreign_key="response.id", index=True, ondelete="CASCADE")
    section_id: str = Field(max_length=40)
    item_id: str = Field(max_length=40)
    choice: str | None = Field(default=None, max_length=40)
    points: Decimal | None = _score()
    deduction: Decimal | None = _score()
    reason: str | None = Field(default=None, max_length=500)
    text: str | None = Field(default=None, max_length=2000)
    score: Decimal | None = _score()


# --- Grading -------------------------------------------------------------------------------


class Veto(SQLModel, table=True):
    """A veto condition (高压线) recorded against a branch: it cannot be 好."""

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="round.id", index=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", index=True)
    condition: str = Field(max_length=100)
    note: str | None = Field(default=None, max_length=500)
    recorded_by: int | None = Field(default=None, foreign_key="person.id")
    recorded_at: datetime = _created()


class GradeDecision(SQLModel, table=True):
    """The proposed grade of a branch and the committee's confirmed or overridden grade."""

    __tablename__ = "grade_decision"
    __table_args__ = (
        CheckConstraint(_one_of("proposed_grade", GRADES), name="proposed"),
        CheckConstraint("final_grade IS NULL OR " + _one_of("final_grade", GRADES), name="final"),
        CheckConstraint(
            "final_grade IS NULL OR final_grade = proposed_grade OR reason IS NOT NULL",
            name="override_reason",
        ),
    )

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    score: Decimal | None = _score()
    proposed_grade: str = Field(max_length=20)
    proposal_reason: str = Field(default="threshold", max_length=30)
    tie_at_edge: bool = False
    final_grade: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, max_length=500)
    decided_by: int | None = Field(default=None, foreign_key="person.id")
    decided_at: datetime | None = _when()
    locked: bool = False


class SignOff(SQLModel, table=True):
    """A signature on a branch's summary sheet (书记, 工作组组长)."""

    __tablename__ = "sign_off"
    __table_args__ = (
        UniqueConstraint("round_id", "org_id", "role"),
        CheckConstraint(_one_of("role", SignRole), name="role"),
    )

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="round.id", index=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id")
    role: str = Field(max_length=20)
    person_id: int = Field(foreign_key="person.id")
    signed_at: datetime = _created()


class RectificationItem(SQLModel, table=True):
    """One line of a branch's rectification ledger (整改台账)."""

    __tablename__ = "rectification_item"

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    round_id: int | None = Field(default=None, foreign_key="round.id")
    matter: str = Field(max_length=500)
    measures: str = Field(max_length=1000)
    due_on: date
    responsible: str = Field(max_length=60)
    created_by: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime = _created()
    closed_at: datetime | None = _when()
    closed_by: int | None = Field(default=None, foreign_key="person.id")


# --- Messages out and the audit trail ------------------------------------------------------


class OutboxMessage(SQLModel, table=True):
    """A message the jobs must deliver; its dedup key makes every reminder happen once."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("dedup_key"),
        CheckConstraint(
            _one_of("status", ("pending", "sending", "sent", "failed", "dropped")), name="status"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # "<round>:<recipient>:<kind>:<slot>" — unique, so a second scheduler cannot add it again.
    dedup_key: str = Field(max_length=200)
    round_id: int | None = Field(default=None, foreign_key="round.id", index=True)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    chat_id: int = Field(sa_type=BigInteger)
    kind: str = Field(max_length=40)
    slot: str = Field(max_length=60)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=10, index=True)
    attempts: int = 0
    not_before: datetime = _created()
    expires_at: datetime | None = _when()
    claimed_by: str | None = Field(default=None, max_length=80)
    claimed_at: datetime | None = _when()
    sent_at: datetime | None = _when()
    telegram_message_id: int | None = Field(default=None, sa_type=BigInteger)
    error: str | None = Field(default=None, max_length=500)
    created_at: datetime = _created()


class AuditLog(SQLModel, table=True):
    """Who did (or was refused) what, when."""

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(_one_of("outcome", ("ok", "refused", "error")), name="outcome"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _created()
    actor_person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    actor_telegram_id: int | None = Field(default=None, sa_type=BigInteger)
    action: str = Field(max_length=60, index=True)
    target: str | None = Field(default=None, max_length=200)
    outcome: str = Field(default="ok", max_length=10)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --- Conversation steps waiting for text ----------------------------------------------------


class PendingInput(SQLModel, table=True):
    """What the next text message of a person answers (an override reason, a ledger field).

    One row per person (a new step replaces the old); ``expires_at`` is computed from the
    bot's injected clock, as ``Draft`` is written, so a moved clock moves the limit too.
    """

    __tablename__ = "pending_input"

    person_id: int = Field(foreign_key="person.id", primary_key=True, ondelete="CASCADE")
    kind: str = Field(max_length=30)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


# --- Grading wiring (issue 9 part A): 补测, participation waivers, decision exceptions ------


class BranchRerun(SQLModel, table=True):
    """补测: the satisfaction phase reopened for one branch with its own deadline (rules §6.4).

    One row per branch and round; ordering another re-run moves the deadline (audited).
    """

    __tablename__ = "branch_rerun"

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    opens_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    deadline: datetime = Field(sa_type=UTCDateTime, nullable=False)
    reason: str = Field(max_length=500)
    ordered_by: int | None = Field(default=None, foreign_key="person.id")


class ParticipationWaiverRow(SQLModel, table=True):
    """An organizer's decision to grade a branch whose participation fell short (§6.4 b)."""

    __tablename__ = "participation_waiver"

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    reason: str = Field(max_length=500)
    decided_by: int | None = Field(default=None, foreign_key="person.id")
    decided_at: datetime = _created()


class DecisionExceptionRow(SQLModel, table=True):
    """A decision kept against a rule: reason, who asked, who confirmed (rules §8.2)."""

    __tablename__ = "decision_exception"

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="round.id", index=True, ondelete="CASCADE")
    kind: str = Field(max_length=30)
    org_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    grades: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str = Field(max_length=500)
    requested_by: int | None = Field(default=None, foreign_key="person.id")
    requested_at: datetime = _created()
    confirmed_by: int | None = Field(default=None, foreign_key="person.id")
    confirmed_at: datetime | None = _when()


# --- Grading records: announced tally, county review, ledger checks (g2b, issue 9) ---------
# docs/rules.md §9 (county review), §10 (the announced tally), §12 (整改台账).


class Announcement(SQLModel, table=True):
    """The tally as announced at /publish (``surveys.review.AnnouncedTally``), frozen.

    The sign-offs of the same (round, branch) sign this record, named by ``digest``; once
    one is signed, later ballots change the live tally and never this row.
    """

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    digest: str = Field(max_length=64)
    record: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    announced_by: int | None = Field(default=None, foreign_key="person.id")
    announced_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class ReviewEvent(SQLModel, table=True):
    """One step of a grade's county review (上报, 审核通过, 退回, 重新评定, 正式确定).

    The latest step of a (round, branch) is its state; the rows are its history.
    """

    __tablename__ = "review_event"
    __table_args__ = (
        CheckConstraint(_one_of("action", ReviewAction), name="action"),
        CheckConstraint(_one_of("after", ReviewState), name="after"),
    )

    id: int | None = Field(default=None, primary_key=True)
    round_id: int = Field(foreign_key="round.id", index=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", index=True)
    action: str = Field(max_length=20)
    after: str = Field(max_length=20)
    grade: str | None = Field(default=None, max_length=20)
    reason: str | None = Field(default=None, max_length=500)
    person_id: int = Field(foreign_key="person.id")
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class LedgerCheck(SQLModel, table=True):
    """The township's check of a ledger line before closing it (逐项验收销号, seed 003)."""

    __tablename__ = "ledger_check"

    item_id: int = Field(foreign_key="rectification_item.id", primary_key=True, ondelete="CASCADE")
    note: str = Field(max_length=500)
    checked_by: int = Field(foreign_key="person.id")
    checked_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


# --- Hardening (issue 10): no schema of its own ------------------------------------------------
# Importing the width guard with the models installs it before any session flushes: every
# string longer than its column is refused on SQLite as on PostgreSQL (storage.widths).
import storage.widths  # noqa: E402, F401
