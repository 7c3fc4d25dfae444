"""Binding a Telegram account to a person: by personal link, branch link or phone number.

Every function takes the session as a keyword argument and does one thing; the caller
owns the transaction, so a binding, its assignments and its audit row land together.
The uniqueness constraints of ``telegram_account`` (one account is one person, one
person has one account) are the last line of defence against two taps at once: a
caller that gets an ``IntegrityError`` retries in a fresh transaction and then sees
the winner's row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage import audit
from storage.models import (
    Assignment,
    Invitation,
    Organization,
    Person,
    PersonRole,
    Round,
    RoundInstrument,
    TelegramAccount,
)
from storage.rounds import (
    BranchLinkFull,
    InvitationError,
    InvitationExpired,
    InvitationUnknown,
    InvitationUsed,
    branch_link_capacity,
    branch_seats_taken,
    find_invitation,
    lock_branch,
    redeem_invitation,
)
from surveys.categories import Audience, Phase, Role
from surveys.i18n import t
from surveys.privileges import needs_phone_match, phones_match
from surveys.roster import normalize_phone


class BindOutcome(StrEnum):
    """What became of an attempt to bind a Telegram account."""

    BOUND = "bound"
    SAME_PERSON = "same_person"  # this account already is that person: nothing to do
    ALREADY_BOUND = "already_bound"  # this account is someone else already
    PERSON_TAKEN = "person_taken"  # that person is bound to another account
    UNKNOWN_TOKEN = "unknown_token"
    EXPIRED = "expired"
    USED = "used"
    BRANCH_FULL = "branch_full"
    UNKNOWN_PHONE = "unknown_phone"
    NEEDS_CONTACT = "needs_contact"  # a privileged person's link: the contact must follow
    CONTACT_MISMATCH = "contact_mismatch"  # the contact shared after the link is not theirs


_REDEEM_REFUSALS: dict[type[InvitationError], BindOutcome] = {
    InvitationUnknown: BindOutcome.UNKNOWN_TOKEN,
    InvitationExpired: BindOutcome.EXPIRED,
    InvitationUsed: BindOutcome.USED,
    BranchLinkFull: BindOutcome.BRANCH_FULL,
}


@dataclass(frozen=True)
class TelegramIdentity:
    """Who is asking: the Telegram user, their private chat and their catalog locale."""

    user_id: int
    chat_id: int
    language: str | None = None


@dataclass(frozen=True)
class BindResult:
    """The outcome, and the person and branch it concerns when there is one."""

    outcome: BindOutcome
    person_id: int | None = None
    org_id: int | None = None
    via: str | None = None

    @property
    def bound(self) -> bool:
        """Whether this attempt created the binding."""
        return self.outcome is BindOutcome.BOUND


BindingRaced = IntegrityError
"""What committing a binding raises when another one took the account or person first."""


def find_account(session: Session, *, telegram_user_id: int) -> TelegramAccount | None:
    """The binding of a Telegram user, if any."""
    statement = select(TelegramAccount).where(TelegramAccount.telegram_user_id == telegram_user_id)
    return session.exec(statement).first()


def person_by_id(session: Session, *, person_id: int | None) -> Person | None:
    """A person by id, None when there is none."""
    return session.get(Person, person_id) if person_id is not None else None


def account_of_person(session: Session, *, person_id: int) -> TelegramAccount | None:
    """The Telegram account bound to a person, if any."""
    statement = select(TelegramAccount).where(TelegramAccount.person_id == person_id)
    return session.exec(statement).first()


def bind_by_invitation(
    session: Session,
    *,
    token: str,
    who: TelegramIdentity,
    now: datetime,
    phone: str | None = None,
) -> BindResult:
    """Bind by a deep-link token: a personal invitation, or a branch link for the masses.

    ``phone`` is the sender's own normalised number when they shared their contact after
    opening the link; a privileged person (``surveys.privileges``) is bound only with it.
    """
    invitation = find_invitation(session, token=token)
    if invitation is None:
        return BindResult(BindOutcome.UNKNOWN_TOKEN)
    refusal = _refuse_bound_account(session, who=who, invitation=invitation)
    if refusal is not None:
        return refusal
    if invitation.kind == "personal":
        return _bind_personal(
            session, invitation=invitation, token=token, who=who, now=now, phone=phone
        )
    return _bind_branch(session, invitation=invitation, token=token, who=who, now=now)


def bind_by_phone(session: Session, *, phone: str, who: TelegramIdentity) -> BindResult:
    """Bind by the person's own phone number as it stands on the roster."""
    existing = find_account(session, telegram_user_id=who.user_id)
    person = session.exec(
        select(Person).where(Person.phone == phone).where(col(Person.anonymous).is_(False))
    ).first()
    if existing is not None:
        same = person is not None and person.id == existing.person_id
        outcome = BindOutcome.SAME_PERSON if same else BindOutcome.ALREADY_BOUND
        return BindResult(outcome, person_id=existing.person_id)
    if person is None or person.id is None:
        return BindResult(BindOutcome.UNKNOWN_PHONE)
    if account_of_person(session, person_id=person.id) is not None:
        return BindResult(BindOutcome.PERSON_TAKEN, person_id=person.id, org_id=person.org_id)
    _add_account(session, person_id=person.id, who=who, via="contact")
    return BindResult(BindOutcome.BOUND, person_id=person.id, org_id=person.org_id, via="contact")


def set_blocked(
    session: Session, *, telegram_user_id: int, now: datetime, blocked: bool
) -> TelegramAccount | None:
    """Record that the user blocked the bot, or came back; None for unregistered users."""
    account = find_account(session, telegram_user_id=telegram_user_id)
    if account is None:
        return None
    account.blocked_at = now if blocked else None
    account.block_reason = "blocked by user" if blocked else None
    session.add(account)
    session.flush()  # the caller's audit row and reads see the change
    return account


def set_language(session: Session, *, telegram_user_id: int, locale: str) -> bool:
    """Store the reply language of a registered account; False for unregistered users."""
    account = find_account(session, telegram_user_id=telegram_user_id)
    if account is None:
        return False
    account.language = locale
    session.add(account)
    return True


def roles_of(session: Session, *, person_id: int) -> list[str]:
    """The distinct roles a person holds, in the order of ``surveys.categories.Role``."""
    held = set(session.exec(select(PersonRole.role).where(PersonRole.person_id == person_id)))
    return [role.value for role in Role if role.value in held]


def organization_name(session: Session, *, org_id: int | None) -> str:
    """The name of an organization, or an empty string."""
    org = session.get(Organization, org_id) if org_id is not None else None
    return org.name if org is not None else ""


def branch_capacity(session: Session, *, token: str) -> int:
    """How many mass representatives the branch of a branch link admits in its round."""
    invitation = find_invitation(session, token=token)
    if invitation is None or invitation.org_id is None:
        return 0
    org = session.get(Organization, invitation.org_id)
    return branch_link_capacity(org) if org is not None else 0


def add_mass_assignments(
    session: Session, *, person_id: int, org_id: int, round_id: int | None
) -> list[Assignment]:
    """Satisfaction assignments (audience masses) for a new mass participant of a branch.

    For the link's round unless it is closed, else for the open round; only rounds that
    pinned a satisfaction instrument ask anything of the masses.
    """
    assignments = [
        Assignment(
            round_id=rid,
            person_id=person_id,
            org_id=org_id,
            instrument_id=instrument_id,
            audience=Audience.MASSES.value,
        )
        for rid in _rounds_for_masses(session, round_id=round_id)
        if (instrument_id := _satisfaction_instrument(session, round_id=rid)) is not None
    ]
    session.add_all(assignments)
    return assignments


# --- Internals ----------------------------------------------------------------------------


def _refuse_bound_account(
    session: Session, *, who: TelegramIdentity, invitation: Invitation
) -> BindResult | None:
    """A result when this Telegram account is bound already (to the same person or not)."""
    existing = find_account(session, telegram_user_id=who.user_id)
    if existing is None:
        return None
    same = invitation.kind == "personal" and invitation.person_id == existing.person_id
    outcome = BindOutcome.SAME_PERSON if same else BindOutcome.ALREADY_BOUND
    return BindResult(outcome, person_id=existing.person_id)


def _bind_personal(
    session: Session,
    *,
    invitation: Invitation,
    token: str,
    who: TelegramIdentity,
    now: datetime,
    phone: str | None,
) -> BindResult:
    """Bind to the invited person, using up the single-use token.

    A privileged person's link is checked without being used up until the shared contact
    matches the roster phone: a forwarded link then neither binds nor spends the token.
    """
    assert invitation.person_id is not None  # the table's CHECK guarantees it
    person_id = invitation.person_id
    if account_of_person(session, person_id=person_id) is not None:
        return BindResult(BindOutcome.PERSON_TAKEN, person_id=person_id)
    person = session.get(Person, person_id)
    org_id = person.org_id if person is not None else None
    if needs_phone_match(roles_of(session, person_id=person_id)):
        usable = _usable(invitation, now=now)
        if usable is not None:
            return BindResult(usable, person_id=person_id)
        if phone is None:
            return BindResult(BindOutcome.NEEDS_CONTACT, person_id=person_id, org_id=org_id)
        if not phones_match(person.phone if person else None, phone):
            return BindResult(BindOutcome.CONTACT_MISMATCH, person_id=person_id)
        # (bound_via stays "invitation": the audit row's action, register.link_contact, says
        # that the contact was checked as well)
    refused = _redeem(session, token=token, now=now)
    if refused is not None:
        return BindResult(refused, person_id=person_id)
    _add_account(session, person_id=person_id, who=who, via="invitation")
    return BindResult(BindOutcome.BOUND, person_id=person_id, org_id=org_id, via="invitation")


def _usable(invitation: Invitation, *, now: datetime) -> BindOutcome | None:
    """Why a personal invitation cannot be used now, read without using it."""
    if invitation.expires_at <= now:
        return BindOutcome.EXPIRED
    if invitation.uses >= invitation.max_uses:
        return BindOutcome.USED
    return None


def _bind_branch(
    session: Session, *, invitation: Invitation, token: str, who: TelegramIdentity, now: datetime
) -> BindResult:
    """Create an anonymous mass participant of the branch, capped per branch and round.

    Every link of the branch for the round shares its seats (issue 10, item 3): reissuing
    a link must not double the branch's anonymous ballots.
    """
    assert invitation.org_id is not None  # the table's CHECK guarantees it
    org_id = invitation.org_id
    org = lock_branch(session, org_id=org_id)
    if org is None:
        return BindResult(BindOutcome.UNKNOWN_TOKEN)
    taken = branch_seats_taken(session, org_id=org_id, round_id=invitation.round_id)
    if taken >= branch_link_capacity(org):
        return BindResult(BindOutcome.BRANCH_FULL, org_id=org_id)
    refused = _redeem(session, token=token, now=now)
    if refused is not None:
        return BindResult(refused, org_id=org_id)
    number = branch_seats_taken(session, org_id=org_id, round_id=invitation.round_id)
    person = Person(name=_mass_name(number), org_id=org_id, anonymous=True)
    session.add(person)
    session.flush()
    assert person.id is not None
    session.add(PersonRole(person_id=person.id, org_id=org_id, role=Role.MASS.value))
    _add_account(session, person_id=person.id, who=who, via="branch_link")
    add_mass_assignments(session, person_id=person.id, org_id=org_id, round_id=invitation.round_id)
    return BindResult(BindOutcome.BOUND, person_id=person.id, org_id=org_id, via="branch_link")


def _rounds_for_masses(session: Session, *, round_id: int | None) -> list[int]:
    """The rounds a branch-link newcomer answers in."""
    if round_id is not None:
        linked = session.get(Round, round_id)
        if linked is not None and linked.status != "closed":
            return [round_id]
    statement = select(Round.id).where(Round.status == "open").order_by(col(Round.id))
    return [rid for rid in session.exec(statement) if rid is not None]


def _satisfaction_instrument(session: Session, *, round_id: int) -> str | None:
    """The instrument a round pinned for the satisfaction phase, if it has that phase."""
    statement = (
        select(RoundInstrument.instrument_id)
        .where(RoundInstrument.round_id == round_id)
        .where(RoundInstrument.phase == Phase.SATISFACTION.value)
    )
    return session.exec(statement).first()


def _redeem(session: Session, *, token: str, now: datetime) -> BindOutcome | None:
    """Use one use of the token atomically; the refusal when it cannot be used."""
    try:
        redeem_invitation(session, token=token, now=now)
    except InvitationError as refusal:
        return _REDEEM_REFUSALS.get(type(refusal), BindOutcome.UNKNOWN_TOKEN)
    return None


def _mass_name(number: int) -> str:
    """The roster name of the n-th anonymous mass participant of a branch."""
    # Stored data shown to organizers in Chinese reports, so it is not localised per reader.
    return t("registration.mass_person_name", "zh_CN", number=number)


def _add_account(session: Session, *, person_id: int, who: TelegramIdentity, via: str) -> None:
    """Insert the binding row (uniqueness enforced by the table)."""
    account = TelegramAccount(
        person_id=person_id,
        telegram_user_id=who.user_id,
        chat_id=who.chat_id,
        language=who.language,
        bound_via=via,
    )
    session.add(account)
    session.flush()


class UnbindOutcome(StrEnum):
    """What unbinding a phone number found."""

    UNBOUND = "unbound"
    NOT_BOUND = "not_bound"
    UNKNOWN_PHONE = "unknown_phone"


def unbind_by_phone(session: Session, *, phone: str, now: datetime) -> tuple[UnbindOutcome, str]:
    """Release a person's Telegram account so they can register again (an organizer's act).

    The person, their roles and everything they answered stay; only the binding goes,
    and the audit log keeps which Telegram account it was.
    """
    normalized = normalize_phone(phone)
    person = (
        session.exec(select(Person).where(Person.phone == normalized)).first()
        if normalized
        else None
    )
    if person is None:
        return UnbindOutcome.UNKNOWN_PHONE, ""
    account = account_of_person(session, person_id=person.id)  # type: ignore[arg-type]
    if account is None:
        return UnbindOutcome.NOT_BOUND, person.name
    audit.record(
        session=session,
        at=now,
        action="registration.unbind",
        target=f"person:{person.id}",
        detail={"telegram_user_id": account.telegram_user_id, "via": "cli"},
    )
    session.delete(account)
    session.flush()
    return UnbindOutcome.UNBOUND, person.name
