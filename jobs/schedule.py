"""When reminders and digests fall due, and what the planner enqueues for them.

The first half is pure time arithmetic (no database, no Telegram); the second half reads
the database to find who is due what and renders the texts (``jobs.digests``).

Reminders are data (like RapidPro's campaign events): "N hours before a phase deadline"
and "daily at HH:MM local while the round is open". The planner is asked "given now,
which slots are due?" every minute; a slot is identified by its nominal time, never by
the tick that noticed it, so after downtime a missed slot is due once, not once per tick.

Rules:

* A reminder slot at ``deadline − offset`` is due from its time until the next smaller
  offset's slot (or the deadline): after downtime only the latest missed reminder of a
  deadline goes out, and nothing is sent once the deadline has passed.
* Nothing is due during quiet hours (local time); a slot that falls there becomes due when
  they end, provided it has not expired by then (a 3 h reminder at 23:00 for a 02:00
  deadline is therefore dropped).
* The interim digest of a day is due from ``interim_time`` until the next day's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from bot.callbacks import encode_start
from jobs import digests
from storage.models import (
    Assignment,
    Organization,
    OutboxMessage,
    Person,
    PersonRole,
    Round,
    RoundInstrument,
    RoundPhase,
    SatisfactionBallots,
    SatisfactionTally,
    TelegramAccount,
)
from storage.outbox import NewMessage, dedup_key
from storage.participation import BranchCoverage, PersonStatus, non_respondents, round_coverage
from storage.rounds import branches_in_scope
from surveys.categories import Audience, Phase, Role
from surveys.i18n import DEFAULT_LOCALE, t
from surveys.instruments import Instrument, get_instrument
from surveys.options import QuietHours, RoundOptions
from surveys.scoring import SatisfactionSummary, summarize_satisfaction

_LOGGER = logging.getLogger(__name__)

MAX_RESUME_BUTTONS = 30
ID_BATCH = 500  # ids per IN (…) list, far below SQLite's and PostgreSQL's bind limits

KIND_REMINDER = "reminder"
KIND_SECRETARY_REMINDER = "secretary_reminder"
KIND_INTERIM = "interim"
KIND_ORGANIZER_DIGEST = "organizer_digest"
KIND_TARGET_REACHED = "target_reached"


def is_quiet(moment: datetime, quiet: QuietHours | None, zone: tzinfo) -> bool:
    """Whether nothing may be sent at this moment."""
    return quiet is not None and quiet.contains(moment, zone)


def next_allowed(moment: datetime, quiet: QuietHours | None, zone: tzinfo) -> datetime:
    """The first moment at or after ``moment`` outside the quiet hours."""
    return moment if quiet is None else quiet.next_allowed(moment, zone)


# --- Reminder slots before deadlines -------------------------------------------------------


@dataclass(frozen=True)
class ReminderSlot:
    """The reminder ``offset_hours`` before ``deadline``: due from ``at`` until ``expires_at``."""

    deadline: datetime
    offset_hours: int
    at: datetime
    expires_at: datetime

    @property
    def key(self) -> str:
        """Stable text for dedup keys: the deadline in UTC and the offset."""
        return f"{slot_stamp(self.deadline)}-{self.offset_hours}h"


def slot_stamp(moment: datetime) -> str:
    """A compact UTC stamp, 20270320T0800Z."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def reminder_slots(deadline: datetime, offsets: Iterable[int]) -> list[ReminderSlot]:
    """Every reminder slot of one deadline, largest offset first, each expiring at the next."""
    ordered = sorted({int(h) for h in offsets if int(h) > 0}, reverse=True)
    times = [deadline - timedelta(hours=h) for h in ordered]
    ends = [*times[1:], deadline]
    return [
        ReminderSlot(deadline, hours, at, end)
        for hours, at, end in zip(ordered, times, ends, strict=True)
    ]


def due_reminder(
    deadline: datetime,
    now: datetime,
    *,
    offsets: Iterable[int],
    opens_at: datetime | None,
    quiet: QuietHours | None,
    zone: tzinfo,
) -> ReminderSlot | None:
    """The reminder slot of this deadline due now, if any (at most one is due at a time)."""
    if now >= deadline or is_quiet(now, quiet, zone):
        return None
    for slot in reminder_slots(deadline, offsets):
        if opens_at is not None and slot.at < opens_at:
            continue  # the phase was not open yet at the slot's time: no such reminder
        if slot.at <= now < slot.expires_at:
            return slot
    return None


# --- Daily interim digests -----------------------------------------------------------------


@dataclass(frozen=True)
class InterimSlot:
    """The interim digest of one local day: due from ``at`` until ``expires_at``."""

    day: date
    at: datetime
    expires_at: datetime

    @property
    def key(self) -> str:
        """The local date, 2027-03-18."""
        return self.day.isoformat()


def due_interim(
    now: datetime,
    *,
    interim_time: time | None,
    opened_at: datetime | None,
    last_deadline: datetime | None,
    quiet: QuietHours | None,
    zone: tzinfo,
) -> InterimSlot | None:
    """Today's (or, before today's time, yesterday's) interim digest if it is due now."""
    if interim_time is None or is_quiet(now, quiet, zone):
        return None
    local = now.astimezone(zone)
    day = local.date()
    at = datetime.combine(day, interim_time, tzinfo=zone).astimezone(UTC)
    if at > now:
        day -= timedelta(days=1)
        at = datetime.combine(day, interim_time, tzinfo=zone).astimezone(UTC)
    expires = datetime.combine(day + timedelta(days=1), interim_time, tzinfo=zone).astimezone(UTC)
    if opened_at is not None and at < opened_at:
        return None
    if last_deadline is not None and at >= last_deadline:
        return None
    return InterimSlot(day, at, expires)


# --- Planning: due slots → outbox rows -----------------------------------------------------
#
# The functions below read the database to find recipients and render texts; they write
# nothing themselves: the caller enqueues what they return (storage.outbox.enqueue), whose
# dedup key makes a second planner, a restart or a re-run add nothing new.


@dataclass(frozen=True)
class Recipient:
    """A person the bot can reach: their chat and language."""

    person_id: int
    name: str
    chat_id: int
    locale: str


def reachable(session: Session, person_ids: Iterable[int]) -> dict[int, Recipient]:
    """The people among these who registered and have not blocked the bot."""
    ids = sorted(set(person_ids))
    found: dict[int, Recipient] = {}
    for start in range(0, len(ids), ID_BATCH):
        rows = session.exec(
            select(Person.id, Person.name, TelegramAccount.chat_id, TelegramAccount.language)
            .join(TelegramAccount, col(TelegramAccount.person_id) == col(Person.id))
            .where(
                col(Person.id).in_(ids[start : start + ID_BATCH]),
                col(TelegramAccount.blocked_at).is_(None),
            )
        ).all()
        for person_id, name, chat_id, language in rows:
            found[person_id] = Recipient(person_id, name, chat_id, language or DEFAULT_LOCALE)
    return found


def role_holders(session: Session, role: Role) -> list[tuple[int, int]]:
    """(person, organization) for everyone holding the role, in a stable order."""
    rows = session.exec(
        select(PersonRole.person_id, PersonRole.org_id)
        .where(col(PersonRole.role) == role.value)
        .order_by(col(PersonRole.person_id), col(PersonRole.org_id))
    ).all()
    return [(person_id, org_id) for person_id, org_id in rows]


class RoundState:
    """What the planner reads about one round during one tick, each thing read once."""

    def __init__(self, session: Session, round_: Round, now: datetime, zone: tzinfo) -> None:
        assert round_.id is not None
        self.session = session
        self.round = round_
        self.round_id: int = round_.id
        self.now = now
        self.zone = zone
        self.options = RoundOptions.from_json(round_.options)
        self.phases = list(
            session.exec(select(RoundPhase).where(col(RoundPhase.round_id) == round_.id)).all()
        )
        self.instrument_phase = {
            row.instrument_id: row.phase
            for row in session.exec(
                select(RoundInstrument).where(col(RoundInstrument.round_id) == round_.id)
            ).all()
        }
        self._coverage: dict[int, BranchCoverage] | None = None
        self._satisfaction: dict[int, tuple[SatisfactionSummary | None, int]] | None = None

    @property
    def coverage(self) -> dict[int, BranchCoverage]:
        """Participation of every graded branch, by org id (one grouped query)."""
        if self._coverage is None:
            self._coverage = round_coverage(self.session, round_id=self.round_id)
        return self._coverage

    def deadlines(self) -> dict[datetime, list[RoundPhase]]:
        """The round's phases grouped by deadline."""
        grouped: dict[datetime, list[RoundPhase]] = {}
        for phase in sorted(self.phases, key=lambda p: (p.deadline, p.phase)):
            grouped.setdefault(phase.deadline, []).append(phase)
        return grouped

    def last_deadline(self) -> datetime | None:
        """When the round's last phase ends."""
        return max((p.deadline for p in self.phases), default=None)

    def quiet_payload(self) -> dict[str, Any]:
        """Quiet hours carried in the payload, so delivery also holds the message back."""
        quiet = self.options.quiet_hours
        return {"quiet_hours": quiet.as_list()} if quiet is not None else {}

    def missing(self, org_id: int, audiences: Iterable[Audience]) -> list[PersonStatus]:
        """People who owe a response about the branch in these audiences."""
        return non_respondents(
            self.session, round_id=self.round_id, org_id=org_id, audiences=list(audiences)
        )

    def satisfaction(self, org_id: int) -> tuple[SatisfactionSummary | None, int]:
        """(summary or None below the small-group threshold, ballots) of a branch."""
        if self._satisfaction is None:
            self._satisfaction = satisfaction_by_branch(
                self.session,
                round_id=self.round_id,
                instrument=self.satisfaction_instrument(),
                threshold=self.options.small_group_threshold,
            )
        return self._satisfaction.get(org_id, (None, 0))

    def satisfaction_instrument(self) -> Instrument | None:
        """The satisfaction instrument version the round pinned."""
        row = self.session.exec(
            select(RoundInstrument).where(
                col(RoundInstrument.round_id) == self.round_id,
                col(RoundInstrument.phase) == Phase.SATISFACTION.value,
            )
        ).first()
        return get_instrument(row.instrument_id, row.version) if row is not None else None


def satisfaction_by_branch(
    session: Session, *, round_id: int, instrument: Instrument | None, threshold: int
) -> dict[int, tuple[SatisfactionSummary | None, int]]:
    """Per branch: the tallied summary (only at or above the threshold) and the ballots."""
    ballots = {
        org_id: count
        for org_id, count in session.exec(
            select(SatisfactionBallots.org_id, SatisfactionBallots.ballots).where(
                col(SatisfactionBallots.round_id) == round_id
            )
        ).all()
    }
    tallies: dict[int, dict[tuple[str, str], int]] = {}
    rows = session.exec(
        select(
            SatisfactionTally.org_id,
            SatisfactionTally.item_id,
            SatisfactionTally.option_id,
            func.sum(SatisfactionTally.count),
        )
        .where(col(SatisfactionTally.round_id) == round_id)
        .group_by(
            col(SatisfactionTally.org_id),
            col(SatisfactionTally.item_id),
            col(SatisfactionTally.option_id),
        )
    ).all()
    for org_id, item_id, option_id, count in rows:
        tallies.setdefault(org_id, {})[(item_id, option_id)] = int(count or 0)
    result: dict[int, tuple[SatisfactionSummary | None, int]] = {}
    for org_id, count in ballots.items():
        summary = None
        if instrument is not None and count >= threshold:
            summary = summarize_satisfaction(instrument, count, tallies.get(org_id, {}))
        result[org_id] = (summary, count)
    return result


def existing_keys(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of these dedup keys the outbox already holds."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), ID_BATCH):
        batch = wanted[start : start + ID_BATCH]
        found.update(
            session.exec(
                select(OutboxMessage.dedup_key).where(col(OutboxMessage.dedup_key).in_(batch))
            ).all()
        )
    return found


# --- Personal reminders ------------------------------------------------------------------------


@dataclass(frozen=True)
class Owed:
    """One survey a reachable person still owes, with the branch it is about."""

    assignment_id: int
    recipient: Recipient
    branch: str
    phase: str


def owed_assignments(state: RoundState, phases: Iterable[RoundPhase]) -> list[Owed]:
    """Unsubmitted surveys of these phases, open now, owed by people the bot can reach.

    One joined query, so a county's fifty thousand assignments need no list of ids.
    Submitted assignments are left out: someone who has answered gets no more nudges.
    """
    open_phases = {p.phase for p in phases if p.opens_at is None or p.opens_at <= state.now}
    instruments = [i for i, phase in state.instrument_phase.items() if phase in open_phases]
    if not instruments:
        return []
    rows = state.session.exec(
        select(
            Assignment.id,
            Assignment.instrument_id,
            Organization.name,
            Person.id,
            Person.name,
            TelegramAccount.chat_id,
            TelegramAccount.language,
        )
        .join(Person, col(Person.id) == col(Assignment.person_id))
        .join(TelegramAccount, col(TelegramAccount.person_id) == col(Person.id))
        .join(Organization, col(Organization.id) == col(Assignment.org_id))
        .where(
            col(Assignment.round_id) == state.round_id,
            col(Assignment.status) != "submitted",
            col(Assignment.instrument_id).in_(instruments),
            col(TelegramAccount.blocked_at).is_(None),
        )
        .order_by(col(Person.id), col(Assignment.id))
    ).all()
    return [
        Owed(
            assignment_id,
            Recipient(person_id, name, chat_id, language or DEFAULT_LOCALE),
            branch,
            state.instrument_phase[instrument_id],
        )
        for assignment_id, instrument_id, branch, person_id, name, chat_id, language in rows
    ]


def personal_reminders(
    state: RoundState,
    phases: Sequence[RoundPhase],
    *,
    deadline: datetime,
    slot: str,
    not_before: datetime,
    payload_extra: Mapping[str, Any],
    skip: set[str],
) -> list[NewMessage]:
    """To each reachable person who owes a survey of these phases: a nudge with resume buttons."""
    by_person: dict[int, list[Owed]] = {}
    for item in owed_assignments(state, phases):
        by_person.setdefault(item.recipient.person_id, []).append(item)
    return [
        _personal_reminder(state, owed, deadline, slot, not_before, payload_extra)
        for person_id, owed in by_person.items()
        # Checked before rendering: after the first tick of a slot nearly everyone is done.
        if dedup_key(state.round_id, person_id, KIND_REMINDER, slot) not in skip
    ]


def _personal_reminder(
    state: RoundState,
    owed: Sequence[Owed],
    deadline: datetime,
    slot: str,
    not_before: datetime,
    payload_extra: Mapping[str, Any],
) -> NewMessage:
    """One person's reminder: which surveys, by when, and a resume button for each."""
    recipient = owed[0].recipient
    locale = recipient.locale
    buttons = [
        (
            t("jobs.resume_button", locale, phase=t(f"phase.{o.phase}", locale), branch=o.branch),
            encode_start(o.assignment_id),
        )
        for o in owed[:MAX_RESUME_BUTTONS]
    ]
    text = digests.personal_reminder_text(
        name=recipient.name,
        phases=list(dict.fromkeys(o.phase for o in owed)),
        count=len(owed),
        deadline=deadline,
        zone=state.zone,
        locale=locale,
    )
    return NewMessage(
        round_id=state.round_id,
        person_id=recipient.person_id,
        chat_id=recipient.chat_id,
        kind=KIND_REMINDER,
        slot=slot,
        payload={"text": text, "reply_markup": digests.resume_keyboard(buttons), **payload_extra},
        not_before=not_before,
        expires_at=deadline,
    )


# --- Secretaries' deadline reminders ----------------------------------------------------------


def secretary_reminders(
    state: RoundState,
    phases: Sequence[RoundPhase],
    *,
    deadline: datetime,
    slot: str,
    not_before: datetime,
    payload_extra: Mapping[str, Any],
    skip: set[str],
) -> list[NewMessage]:
    """To each secretary whose branch is behind: participation, how many more, who is missing."""
    phase_names = [p.phase for p in phases]
    audiences = digests.secretary_audiences(phase_names)
    if not audiences:
        return []
    holders = role_holders(state.session, Role.SECRETARY)
    people = reachable(state.session, (person for person, _ in holders))
    messages = []
    for person_id, org_id in holders:
        recipient = people.get(person_id)
        branch = state.coverage.get(org_id)
        if recipient is None or branch is None or not digests.behind(branch, audiences):
            continue
        key_slot = f"o{org_id}-{slot}"
        if dedup_key(state.round_id, person_id, KIND_SECRETARY_REMINDER, key_slot) in skip:
            continue
        text = digests.secretary_reminder_text(
            branch=branch,
            phases=phase_names,
            audiences=audiences,
            missing=state.missing(org_id, audiences),
            deadline=deadline,
            now=max(state.now, not_before),
            zone=state.zone,
            locale=recipient.locale,
        )
        messages.append(
            NewMessage(
                round_id=state.round_id,
                person_id=person_id,
                chat_id=recipient.chat_id,
                kind=KIND_SECRETARY_REMINDER,
                slot=key_slot,
                payload={"text": text, **payload_extra},
                not_before=not_before,
                expires_at=deadline,
            )
        )
    return messages


def _slot_keys(state: RoundState, slot: str) -> set[str]:
    """Dedup keys already in the outbox for this round and slot (any kind, any recipient)."""
    rows = state.session.exec(
        select(OutboxMessage.dedup_key).where(
            col(OutboxMessage.round_id) == state.round_id,
            col(OutboxMessage.slot).endswith(slot, autoescape=True),
        )
    ).all()
    return set(rows)


def deadline_reminders(state: RoundState) -> list[NewMessage]:
    """Reminders of every deadline whose reminder slot is due now."""
    options = state.options
    messages: list[NewMessage] = []
    for deadline, phases in state.deadlines().items():
        opens = [p.opens_at for p in phases]
        slot = due_reminder(
            deadline,
            state.now,
            offsets=options.reminder_offsets,
            opens_at=None if None in opens else min(o for o in opens if o is not None),
            quiet=options.quiet_hours,
            zone=state.zone,
        )
        if slot is None:
            continue
        common: dict[str, Any] = {
            "deadline": deadline,
            "slot": slot.key,
            "not_before": state.now,
            "payload_extra": state.quiet_payload(),
            "skip": _slot_keys(state, slot.key),
        }
        messages += personal_reminders(state, phases, **common)
        messages += secretary_reminders(state, phases, **common)
    return messages


# --- Interim results and target reached -----------------------------------------------------


def interim_digests(state: RoundState) -> list[NewMessage]:
    """The daily interim results: secretaries their branch, organizers every branch in scope."""
    options = state.options
    slot = due_interim(
        state.now,
        interim_time=options.interim_time,
        opened_at=state.round.opened_at,
        last_deadline=state.last_deadline(),
        quiet=options.quiet_hours,
        zone=state.zone,
    )
    if slot is None:
        return []
    skip = _slot_keys(state, slot.key)
    return secretary_interims(state, slot, skip) + organizer_digests(state, slot, skip)


def _message(
    state: RoundState,
    recipient: Recipient,
    kind: str,
    slot: str,
    text: str,
    expires_at: datetime | None,
) -> NewMessage:
    return NewMessage(
        round_id=state.round_id,
        person_id=recipient.person_id,
        chat_id=recipient.chat_id,
        kind=kind,
        slot=slot,
        payload={"text": text, **state.quiet_payload()},
        not_before=state.now,
        expires_at=expires_at,
    )


def secretary_interims(state: RoundState, slot: InterimSlot, skip: set[str]) -> list[NewMessage]:
    """Each secretary: their branch's participation and, for big enough groups, the 三率."""
    holders = role_holders(state.session, Role.SECRETARY)
    people = reachable(state.session, (person for person, _ in holders))
    messages = []
    for person_id, org_id in holders:
        recipient, branch = people.get(person_id), state.coverage.get(org_id)
        key_slot = f"o{org_id}-{slot.key}"
        if recipient is None or branch is None:
            continue
        if dedup_key(state.round_id, person_id, KIND_INTERIM, key_slot) in skip:
            continue
        summary, ballots = state.satisfaction(org_id)
        text = digests.secretary_interim_text(
            branch=branch,
            summary=summary,
            ballots=ballots,
            threshold=state.options.small_group_threshold,
            at=state.now,
            zone=state.zone,
            locale=recipient.locale,
        )
        messages.append(_message(state, recipient, KIND_INTERIM, key_slot, text, slot.expires_at))
    return messages


def unreachable_counts(state: RoundState, org_ids: Iterable[int]) -> dict[int, int]:
    """Per branch: non-respondents the bot cannot nudge (never registered, or blocked it)."""
    return {
        org_id: sum(1 for p in state.missing(org_id, digests.SECRETARY_AUDIENCES) if p.unreachable)
        for org_id in org_ids
    }


def organizer_digests(state: RoundState, slot: InterimSlot, skip: set[str]) -> list[NewMessage]:
    """Each organizer: a table of every branch in scope, the furthest behind first."""
    organizers = sorted({person for person, _ in role_holders(state.session, Role.ORGANIZER)})
    people = reachable(state.session, organizers)
    scopes = {
        person_id: [
            org_id
            for org_id in branches_in_scope(state.session, person_id=person_id, role=Role.ORGANIZER)
            if org_id in state.coverage
        ]
        for person_id in people
    }
    pending = {
        p: s
        for p, s in scopes.items()
        if s and dedup_key(state.round_id, p, KIND_ORGANIZER_DIGEST, slot.key) not in skip
    }
    unreachable = unreachable_counts(state, {o for s in pending.values() for o in s})
    messages = []
    for person_id, scope in pending.items():
        recipient = people[person_id]
        texts = digests.organizer_digest_texts(
            branches=[state.coverage[o] for o in scope],
            unreachable=unreachable,
            at=state.now,
            zone=state.zone,
            locale=recipient.locale,
        )
        for part, text in enumerate(texts, start=1):
            # The first part carries the plain slot, so the skip check above sees it.
            key_slot = slot.key if part == 1 else f"p{part}-{slot.key}"
            messages.append(
                _message(state, recipient, KIND_ORGANIZER_DIGEST, key_slot, text, slot.expires_at)
            )
    return messages


def targets_reached(state: RoundState) -> list[NewMessage]:
    """Tell a secretary once when their branch reaches its participation targets."""
    if is_quiet(state.now, state.options.quiet_hours, state.zone):
        return []
    holders = role_holders(state.session, Role.SECRETARY)
    candidates = [
        (person_id, org_id)
        for person_id, org_id in holders
        if org_id in state.coverage and digests.target_reached(state.coverage[org_id])
    ]
    keys = {
        (p, o): dedup_key(state.round_id, p, KIND_TARGET_REACHED, f"o{o}") for p, o in candidates
    }
    done = existing_keys(state.session, keys.values())
    people = reachable(state.session, (p for p, _ in candidates))
    messages = []
    for person_id, org_id in candidates:
        recipient = people.get(person_id)
        if recipient is None or keys[(person_id, org_id)] in done:
            continue
        text = digests.target_reached_text(branch=state.coverage[org_id], locale=recipient.locale)
        messages.append(_message(state, recipient, KIND_TARGET_REACHED, f"o{org_id}", text, None))
    return messages


# --- Entry points -------------------------------------------------------------------------------


def open_rounds(session: Session) -> list[Round]:
    """Rounds that are open now."""
    return list(
        session.exec(select(Round).where(col(Round.status) == "open").order_by(col(Round.id))).all()
    )


# Bad round options (a typo in a time, an unknown target key) surface as these while a
# round is planned; one such round must not stop the reminders of the others.
_OPTION_ERRORS = (KeyError, TypeError, ValueError)


def plan_due(session: Session, *, now: datetime, zone: tzinfo) -> list[NewMessage]:
    """Every message due now in every open round (already enqueued ones left out)."""
    messages: list[NewMessage] = []
    for round_ in open_rounds(session):
        try:
            messages += _due_in_round(RoundState(session, round_, now, zone))
        except _OPTION_ERRORS:
            _LOGGER.exception("round %s: unreadable options, not planned", round_.id)
    return messages


def _due_in_round(state: RoundState) -> list[NewMessage]:
    return deadline_reminders(state) + interim_digests(state) + targets_reached(state)


def plan_manual(
    session: Session, *, now: datetime, zone: tzinfo, force: bool = False
) -> list[NewMessage]:
    """A reminder round now (/remind, ``ceping remind``): every open deadline, once a minute.

    Outside quiet hours or when forced the messages go out at once; otherwise they wait
    for the end of the quiet hours (and are dropped if the deadline passes first).
    """
    messages: list[NewMessage] = []
    for round_ in open_rounds(session):
        try:
            messages += _manual_in_round(RoundState(session, round_, now, zone), force=force)
        except _OPTION_ERRORS:
            _LOGGER.exception("round %s: unreadable options, no reminders", round_.id)
    return messages


def _manual_in_round(state: RoundState, *, force: bool) -> list[NewMessage]:
    quiet = None if force else state.options.quiet_hours
    not_before = next_allowed(state.now, quiet, state.zone)
    messages: list[NewMessage] = []
    for deadline, phases in state.deadlines().items():
        if deadline <= not_before:
            continue
        slot = f"manual-{slot_stamp(state.now)}-{slot_stamp(deadline)}"
        common: dict[str, Any] = {
            "deadline": deadline,
            "slot": slot,
            "not_before": not_before,
            "payload_extra": {} if force else state.quiet_payload(),
            "skip": _slot_keys(state, slot),
        }
        messages += personal_reminders(state, phases, **common)
        messages += secretary_reminders(state, phases, **common)
    return messages
