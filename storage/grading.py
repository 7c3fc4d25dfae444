"""The committee's decisions: grades, vetoes, members-only branches, sign-offs, rectification.

Every change writes an AuditLog row in the same transaction. Authorization is the caller's
job (``storage.scope``); these functions check the data rules only and raise
:class:`GradingError` with a code the bot turns into a catalog message.

Conversation state (an override waiting for its reason, a ledger line being typed in)
lives in ``storage.pending``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage import audit
from storage.decisions import preview
from storage.models import (
    GradeDecision,
    LedgerCheck,
    Organization,
    Person,
    PersonRole,
    RectificationItem,
    SignOff,
    TelegramAccount,
    Veto,
)
from storage.tallies import round_tally
from surveys.i18n import t
from surveys.review import ReviewError, close_item
from surveys.rules import Grade
from surveys.vetoes import parse_veto_condition

SIGN_ROLES = ("secretary", "work_group_leader")
REMINDER_DAYS = 3


class GradingError(Exception):
    """A data rule refused the change; ``code`` names it for the message catalog."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def _audit(
    session: Session,
    *,
    person_id: int | None,
    action: str,
    target: str,
    detail: dict[str, Any],
    at: datetime,
) -> None:
    audit.record(
        session=session,
        action=action,
        at=at,
        actor_person_id=person_id,
        target=target,
        detail=detail,
    )


def _clean(text: str | None) -> str:
    return (text or "").strip()


# --- Vetoes and members-only branches ------------------------------------------------------


def vetoes_of(session: Session, *, round_id: int, org_id: int) -> list[str]:
    """The veto codes recorded against a branch in a round, in the order recorded."""
    rows = session.exec(
        select(Veto.condition)
        .where(Veto.round_id == round_id, Veto.org_id == org_id)
        .order_by(col(Veto.id))
    ).all()
    return list(rows)


@dataclass(frozen=True)
class GradeChange:
    """A branch whose proposed grade moves (None: no proposal)."""

    org_id: int
    name: str
    before: Grade | None
    after: Grade | None


@dataclass(frozen=True)
class VetoEffect:
    """What recording a veto would do to the proposals of the branch's pool (§5.6)."""

    in_round: bool
    provisional: bool  # the pool is incomplete: thresholds and vetoes only, no quota yet
    before: Grade | None  # the branch's proposal now
    after: Grade | None  # its proposal with the veto
    others: list[GradeChange]  # other branches of the pool whose proposal moves (a 好 place)
    decided: Grade | None  # a grade the committee already locked, if any


def veto_effect(
    session: Session, *, round_id: int, org_id: int, condition: str, now: datetime
) -> VetoEffect:
    """The proposals of the branch's pool now and as they would be with this veto."""
    before = round_tally(session, round_id=round_id, now=now)
    after = round_tally(session, round_id=round_id, now=now, extra_vetoes={org_id: [condition]})
    branch, changed = before.branch(org_id), after.branch(org_id)
    if branch is None or changed is None:
        return VetoEffect(False, True, None, None, [], None)
    others = []
    for old in before.branches:
        new = after.branch(old.org_id)
        if old.org_id == org_id or new is None or old.pool is not branch.pool:
            continue
        grades = [b.proposal.grade if b.proposal else None for b in (old, new)]
        if grades[0] is not grades[1]:
            others.append(GradeChange(old.org_id, old.name, grades[0], grades[1]))
    decision = branch.decision
    return VetoEffect(
        in_round=True,
        provisional=branch.provisional,
        before=branch.proposal.grade if branch.proposal else None,
        after=changed.proposal.grade if changed.proposal else None,
        others=others,
        decided=decision.final_grade if decision is not None and decision.locked else None,
    )


def _lock_branch(session: Session, org_id: int) -> None:
    """Row-lock the branch on PostgreSQL, so a check-then-insert on it is not raced.

    SQLite needs nothing: its writers already queue (BEGIN IMMEDIATE, see storage.db).
    """
    locked = select(Organization.id).where(col(Organization.id) == org_id).with_for_update()
    session.exec(locked).first()


def record_veto(
    session: Session,
    *,
    round_id: int,
    org_id: int,
    condition: str,
    note: str | None,
    person_id: int | None,
    now: datetime,
) -> Veto:
    """Record a veto condition against a branch: it can no longer be proposed 好.

    The same condition twice for one branch and round is refused ('already_recorded'): it
    would change nothing but the audit trail's clarity.
    """
    code = parse_veto_condition(condition)
    if code is None:
        raise GradingError("unknown_condition", condition=condition)
    _lock_branch(session, org_id)  # two taps at once: the second waits, then sees the first
    if code in vetoes_of(session, round_id=round_id, org_id=org_id):
        raise GradingError("already_recorded", condition=code)
    veto = Veto(
        round_id=round_id,
        org_id=org_id,
        condition=code,
        note=_clean(note) or None,
        recorded_by=person_id,
        recorded_at=now,
    )
    session.add(veto)
    _audit(
        session,
        at=now,
        person_id=person_id,
        action="grade.veto",
        target=f"org:{org_id}",
        detail={"round_id": round_id, "condition": code, "note": veto.note},
    )
    session.flush()
    return veto


def members_only_reason(session: Session, *, org_id: int) -> str | None:
    """The reason a branch is surveyed among its members only, or None when it is not."""
    org = session.get(Organization, org_id)
    return org.members_only_reason if org is not None and org.members_only else None


def mark_members_only(
    session: Session, *, org_id: int, reason: str, person_id: int | None, now: datetime
) -> Organization:
    """Mark a branch whose masses cannot be reached (以全体党员测评为准), with the reason."""
    reason = _clean(reason)
    if not reason:
        raise GradingError("reason_required")
    org = session.get(Organization, org_id)
    if org is None:
        raise GradingError("not_found")
    org.members_only, org.members_only_reason, org.updated_at = True, reason[:500], now
    session.add(org)
    _audit(
        session,
        at=now,
        person_id=person_id,
        action="org.members_only",
        target=f"org:{org_id}",
        detail={"reason": org.members_only_reason},
    )
    session.flush()
    return org


# --- Grade decisions ---------------------------------------------------------------------


def decide_grade(
    session: Session,
    *,
    round_id: int,
    org_id: int,
    person_id: int | None,
    now: datetime,
    grade: Grade | None = None,
    reason: str | None = None,
) -> GradeDecision:
    """Confirm the proposed grade (``grade`` None or equal) or override it with a reason.

    Either way the decision is locked and audited. Without a proposal (no score yet), on a
    locked decision, or overriding without a reason, nothing changes and GradingError says why.
    """
    existing = session.get(GradeDecision, (round_id, org_id))
    if existing is not None and existing.locked:
        raise GradingError("locked")
    branch = round_tally(session, round_id=round_id, org_ids=[org_id], now=now).branch(org_id)
    proposal = branch.proposal if branch is not None else None
    if proposal is None:
        raise GradingError("no_proposal")
    final = grade or proposal.grade
    reason = _clean(reason) or None
    overriding = final is not proposal.grade
    if overriding and reason is None:
        raise GradingError("reason_required")
    # Quotas, vetoes and status of the pool (docs/rules.md §8): a rule broken without a
    # confirmed exception (a reason and a second organizer) blocks the decision.
    checked = preview(session, round_id=round_id, org_id=org_id, grade=final, now=now)
    if checked.open:
        raise GradingError("violations", kinds=[v.kind.value for v in checked.open])
    decision = existing or GradeDecision(round_id=round_id, org_id=org_id, proposed_grade="")
    decision.score = proposal.score
    decision.proposed_grade = proposal.grade.value
    decision.proposal_reason = proposal.reason.value
    decision.tie_at_edge = proposal.tie_at_edge
    decision.final_grade = final.value
    decision.reason = reason[:500] if reason else None
    decision.decided_by, decision.decided_at, decision.locked = person_id, now, True
    _store_decision(session, decision)
    _audit(
        session,
        at=now,
        person_id=person_id,
        action="grade.override" if overriding else "grade.confirm",
        target=f"org:{org_id}",
        detail={
            "round_id": round_id,
            "proposed": proposal.grade.value,
            "final": final.value,
            "score": str(proposal.score),
            "reason": decision.reason,
        },
    )
    session.flush()
    return decision


def _store_decision(session: Session, decision: GradeDecision) -> None:
    """Write the decision; a second organizer deciding the same branch at once is refused."""
    try:
        with session.begin_nested():
            session.add(decision)
            session.flush()
    except IntegrityError as error:
        # Both read "undecided", the other committed first: theirs stands (and is locked).
        raise GradingError("locked") from error


def grade_decisions(session: Session, *, round_id: int) -> dict[int, GradeDecision]:
    """Every stored decision of the round, by branch."""
    rows = session.exec(select(GradeDecision).where(GradeDecision.round_id == round_id)).all()
    return {row.org_id: row for row in rows}


# --- Sign-offs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """Who signed a branch's summary sheet in which capacity, and when (UTC)."""

    org_id: int
    role: str
    person_id: int
    name: str
    signed_at: datetime


def sign(
    session: Session, *, round_id: int, org_id: int, role: str, person_id: int, now: datetime
) -> SignOff:
    """Sign the branch's satisfaction summary as 书记 or 工作组组长 (once per role)."""
    if role not in SIGN_ROLES:
        raise GradingError("unknown_role", role=role)
    existing = session.exec(
        select(SignOff).where(
            SignOff.round_id == round_id, SignOff.org_id == org_id, SignOff.role == role
        )
    ).first()
    if existing is not None:
        raise GradingError("already_signed", role=role)
    row = SignOff(round_id=round_id, org_id=org_id, role=role, person_id=person_id, signed_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as error:  # signed a moment ago by another tap or process
        raise GradingError("already_signed", role=role) from error
    _audit(
        session,
        at=now,
        person_id=person_id,
        action="sign_off",
        target=f"org:{org_id}",
        detail={"round_id": round_id, "role": role},
    )
    session.flush()
    return row


def signatures(
    session: Session, *, round_id: int, org_ids: Collection[int] | None = None
) -> dict[int, dict[str, Signature]]:
    """Signatures of the round by branch and role, with the signer's name."""
    statement = (
        select(SignOff, Person.name)
        .join(Person, Person.id == SignOff.person_id)  # type: ignore[arg-type]
        .where(SignOff.round_id == round_id)
    )
    if org_ids is not None:
        statement = statement.where(col(SignOff.org_id).in_(list(org_ids)))
    found: dict[int, dict[str, Signature]] = {}
    for row, name in session.exec(statement).all():
        found.setdefault(row.org_id, {})[row.role] = Signature(
            row.org_id, row.role, row.person_id, name, row.signed_at
        )
    return found


# --- Rectification ledger (整改台账) -------------------------------------------------------


def add_rectification(
    session: Session,
    *,
    org_id: int,
    round_id: int | None,
    matter: str,
    measures: str,
    due_on: date,
    responsible: str,
    person_id: int | None,
    now: datetime,
) -> RectificationItem:
    """Add one line to a branch's ledger: 整改事项, 整改措施, 整改时限, 责任人."""
    fields = {
        "matter": _clean(matter),
        "measures": _clean(measures),
        "responsible": _clean(responsible),
    }
    for name, value in fields.items():
        if not value:
            raise GradingError("field_required", field=name)
    item = RectificationItem(
        org_id=org_id,
        round_id=round_id,
        matter=fields["matter"][:500],
        measures=fields["measures"][:1000],
        due_on=due_on,
        responsible=fields["responsible"][:60],
        created_by=person_id,
        created_at=now,
    )
    session.add(item)
    session.flush()
    _audit(
        session,
        at=now,
        person_id=person_id,
        action="rectify.add",
        target=f"org:{org_id}",
        detail={"item_id": item.id, "due_on": due_on.isoformat()},
    )
    return item


def ledger(
    session: Session, *, org_ids: Collection[int] | None = None, round_id: int | None = None
) -> list[RectificationItem]:
    """Ledger lines of the given branches (all when None), oldest deadline first."""
    statement = select(RectificationItem)
    if org_ids is not None:
        statement = statement.where(col(RectificationItem.org_id).in_(list(org_ids)))
    if round_id is not None:
        statement = statement.where(RectificationItem.round_id == round_id)
    order = (RectificationItem.org_id, RectificationItem.due_on, RectificationItem.id)
    return list(session.exec(statement.order_by(*order)).all())


def close_rectification(
    session: Session,
    *,
    item_id: int,
    person_id: int | None,
    now: datetime,
    note: str | None = None,
    roles: Collection[str] | None = None,
) -> RectificationItem:
    """Close (销号) a ledger line; closing twice is refused.

    From the bot ``roles`` and ``note`` are given: only the township closes, after checking,
    and says what it checked (逐项验收销号, docs/rules.md §12); the check is kept.
    """
    item = session.get(RectificationItem, item_id)
    if item is None:
        raise GradingError("not_found")
    if item.closed_at is not None:
        raise GradingError("already_closed")
    if roles is not None:
        try:
            closure = close_item(
                item_id, person_id=person_id or 0, roles=roles, note=note or "", closed_at=now
            )
        except ReviewError as error:
            raise GradingError(error.code) from None
        if person_id is not None:
            session.add(
                LedgerCheck(
                    item_id=item_id, note=closure.note[:500], checked_by=person_id, checked_at=now
                )
            )
    item.closed_at, item.closed_by = now, person_id
    session.add(item)
    _audit(
        session,
        at=now,
        person_id=person_id,
        action="rectify.close",
        target=f"org:{item.org_id}",
        detail={"item_id": item.id, "note": note},
    )
    session.flush()
    return item


def ledger_checks(session: Session, *, item_ids: Collection[int]) -> dict[int, LedgerCheck]:
    """The township's check of each closed line, by item id."""
    if not item_ids:
        return {}
    rows = session.exec(select(LedgerCheck).where(col(LedgerCheck.item_id).in_(list(item_ids))))
    return {row.item_id: row for row in rows.all()}


def key_problems(session: Session, *, round_id: int, org_id: int) -> int:
    """How many key problems (ledger lines) a branch has listed in this round (§12)."""
    rows = session.exec(
        select(RectificationItem.id).where(
            RectificationItem.round_id == round_id, RectificationItem.org_id == org_id
        )
    ).all()
    return len(rows)


@dataclass(frozen=True)
class DueReminder:
    """A reminder the jobs should send: one open ledger line, one person to tell."""

    item_id: int
    org_id: int
    person_id: int
    chat_id: int
    matter: str
    due_on: date


def rectification_reminders(
    session: Session, *, today: date, within_days: int = REMINDER_DAYS
) -> list[DueReminder]:
    """Open ledger lines due within ``within_days`` (or overdue), for each secretary to remind.

    :func:`enqueue_rectification_reminders` puts them into the outbox.
    """
    horizon = today + timedelta(days=within_days)
    rows = session.exec(
        select(RectificationItem, PersonRole.person_id, TelegramAccount.chat_id)
        .join(PersonRole, PersonRole.org_id == RectificationItem.org_id)  # type: ignore[arg-type]
        .join(TelegramAccount, TelegramAccount.person_id == PersonRole.person_id)  # type: ignore[arg-type]
        .where(
            col(RectificationItem.closed_at).is_(None),
            RectificationItem.due_on <= horizon,
            PersonRole.role == "secretary",
            col(TelegramAccount.blocked_at).is_(None),
        )
        .order_by(RectificationItem.due_on, RectificationItem.id)
    ).all()
    return [
        DueReminder(
            item_id=item.id,  # type: ignore[arg-type]
            org_id=item.org_id,
            person_id=person_id,
            chat_id=chat_id,
            matter=item.matter,
            due_on=item.due_on,
        )
        for item, person_id, chat_id in rows
    ]


def enqueue_rectification_reminders(session: Session, *, today: date, now: datetime) -> int:
    """Put a 'rectification_due' reminder into the outbox for each line due soon; how many new.

    For the jobs' daily schedule. The outbox's dedup key (item and deadline as the slot)
    makes each reminder happen once, however often this runs.
    """
    from storage import outbox  # the jobs' module; imported here so grading does not need it

    added = 0
    for reminder in rectification_reminders(session, today=today):
        account = session.exec(
            select(TelegramAccount).where(TelegramAccount.person_id == reminder.person_id)
        ).first()
        locale = account.language if account is not None and account.language else "zh_CN"
        org = session.get(Organization, reminder.org_id)
        text = t(
            "rectify.reminder",
            locale,
            name=org.name if org is not None else "",
            matter=reminder.matter,
            due=reminder.due_on.isoformat(),
        )
        message = outbox.NewMessage(
            round_id=None,
            person_id=reminder.person_id,
            chat_id=reminder.chat_id,
            kind="rectification_due",
            slot=f"item{reminder.item_id}:{reminder.due_on.isoformat()}",
            payload={"text": text},
            not_before=now,
        )
        added += outbox.enqueue(session, message=message, now=now)
    return added
