"""What the planner enqueues for the reminder and digest slots due now (``jobs.schedule``).

The functions below read the database (through ``storage``) to find recipients and render
texts (``jobs.digests``); they write nothing themselves: the caller enqueues what they
return (storage.outbox.enqueue), whose dedup key makes a second planner, a restart or a
re-run add nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any

from jobs import digests
from jobs.schedule import (
    InterimSlot,
    due_interim,
    due_reminder,
    is_quiet,
    next_allowed,
    slot_stamp,
)
from storage import reminders
from storage.db import Session
from storage.models import Round, RoundPhase
from storage.outbox import NewMessage, dedup_key
from storage.participation import BranchCoverage, PersonStatus, non_respondents, round_coverage
from storage.remedies import reruns
from storage.reminders import Owed, Recipient, reachable, role_holders
from storage.rounds import branches_in_scope
from storage.tallies import satisfaction_by_branch
from surveys.categories import Audience, Role
from surveys.i18n import t
from surveys.options import RoundOptions
from surveys.scoring import SatisfactionSummary
from surveys.start_links import encode_start

_LOGGER = logging.getLogger(__name__)

MAX_RESUME_BUTTONS = 30

KIND_REMINDER = "reminder"
KIND_SECRETARY_REMINDER = "secretary_reminder"
KIND_INTERIM = "interim"
KIND_ORGANIZER_DIGEST = "organizer_digest"
KIND_TARGET_REACHED = "target_reached"


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
        self.phases = reminders.round_phases(session=session, round_id=round_.id)
        self.instrument_phase = reminders.instrument_phases(session=session, round_id=round_.id)
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
            # The privacy rule and the tally are storage.tallies', as in the reports.
            self._satisfaction = satisfaction_by_branch(
                self.session,
                round_id=self.round_id,
                threshold=self.options.small_group_threshold,
            )
        return self._satisfaction.get(org_id, (None, 0))


# --- Personal reminders ------------------------------------------------------------------------


def owed_assignments(state: RoundState, phases: Iterable[RoundPhase]) -> list[Owed]:
    """Unsubmitted surveys of these phases, open now, owed by people the bot can reach."""
    open_phases = {p.phase for p in phases if p.opens_at is None or p.opens_at <= state.now}
    instruments = [i for i, phase in state.instrument_phase.items() if phase in open_phases]
    if not instruments:
        return []
    return reminders.owed_assignments(
        session=state.session,
        round_id=state.round_id,
        instrument_phase=state.instrument_phase,
        instruments=instruments,
    )


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
    # Only the phases a secretary chases (not the township's inspection or scoring).
    phase_names = [p.phase for p in phases if digests.secretary_audiences([p.phase])]
    audiences = digests.secretary_audiences(phase_names)
    if not audiences:
        return []
    holders = role_holders(session=state.session, role=Role.SECRETARY)
    people = reachable(session=state.session, person_ids=(person for person, _ in holders))
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
                payload={
                    "text": text,
                    "reply_markup": digests.secretary_keyboard(org_id, recipient.locale),
                    **payload_extra,
                },
                not_before=not_before,
                expires_at=deadline,
            )
        )
    return messages


def _slot_keys(state: RoundState, slot: str) -> set[str]:
    """Dedup keys already in the outbox for this round and slot (any kind, any recipient)."""
    return reminders.slot_keys(session=state.session, round_id=state.round_id, slot=slot)


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


def rerun_reminders(state: RoundState) -> list[NewMessage]:
    """补测: each re-run branch's own reminders, against its own deadline (docs/rules.md §6.4).

    Only that branch's members and masses who still owe the survey, and its secretary.
    """
    options = state.options
    messages: list[NewMessage] = []
    for org_id, rerun in reruns(state.session, round_id=state.round_id).items():
        branch = state.coverage.get(org_id)
        slot = due_reminder(
            rerun.deadline,
            state.now,
            offsets=options.reminder_offsets,
            opens_at=None,
            quiet=options.quiet_hours,
            zone=state.zone,
        )
        if slot is None or branch is None:
            continue
        phase = RoundPhase(round_id=state.round_id, phase="satisfaction", deadline=rerun.deadline)
        key = f"rerun{org_id}-{slot.key}"
        skip = _slot_keys(state, key)
        by_person: dict[int, list[Owed]] = {}
        for item in owed_assignments(state, [phase]):
            if item.branch == branch.name:
                by_person.setdefault(item.recipient.person_id, []).append(item)
        extra = state.quiet_payload()
        messages += [
            _personal_reminder(state, owed, rerun.deadline, key, state.now, extra)
            for person_id, owed in by_person.items()
            if dedup_key(state.round_id, person_id, KIND_REMINDER, key) not in skip
        ]
        secretaries = secretary_reminders(
            state,
            [phase],
            deadline=rerun.deadline,
            slot=key,
            not_before=state.now,
            payload_extra=extra,
            skip=skip,
        )
        messages += [m for m in secretaries if m.slot == f"o{org_id}-{key}"]
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
    holders = role_holders(session=state.session, role=Role.SECRETARY)
    people = reachable(session=state.session, person_ids=(person for person, _ in holders))
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
    holders = role_holders(session=state.session, role=Role.ORGANIZER)
    organizers = sorted({person for person, _ in holders})
    people = reachable(session=state.session, person_ids=organizers)
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
    holders = role_holders(session=state.session, role=Role.SECRETARY)
    candidates = [
        (person_id, org_id)
        for person_id, org_id in holders
        if org_id in state.coverage and digests.target_reached(state.coverage[org_id])
    ]
    keys = {
        (p, o): dedup_key(state.round_id, p, KIND_TARGET_REACHED, f"o{o}") for p, o in candidates
    }
    done = reminders.existing_keys(session=state.session, keys=keys.values())
    people = reachable(session=state.session, person_ids=(p for p, _ in candidates))
    messages = []
    for person_id, org_id in candidates:
        recipient = people.get(person_id)
        if recipient is None or keys[(person_id, org_id)] in done:
            continue
        text = digests.target_reached_text(branch=state.coverage[org_id], locale=recipient.locale)
        messages.append(_message(state, recipient, KIND_TARGET_REACHED, f"o{org_id}", text, None))
    return messages


# --- Entry points -------------------------------------------------------------------------------


# Bad round options (a typo in a time, an unknown target key) surface as these while a
# round is planned; one such round must not stop the reminders of the others.
_OPTION_ERRORS = (KeyError, TypeError, ValueError)


def plan_due(session: Session, *, now: datetime, zone: tzinfo) -> list[NewMessage]:
    """Every message due now in every open round (already enqueued ones left out)."""
    messages: list[NewMessage] = []
    for round_ in reminders.open_rounds(session=session):
        try:
            messages += _due_in_round(RoundState(session, round_, now, zone))
        except _OPTION_ERRORS:
            _LOGGER.exception("round %s: unreadable options, not planned", round_.id)
    return messages


def _due_in_round(state: RoundState) -> list[NewMessage]:
    return (
        deadline_reminders(state)
        + rerun_reminders(state)
        + interim_digests(state)
        + targets_reached(state)
    )


def plan_manual(
    session: Session, *, now: datetime, zone: tzinfo, force: bool = False
) -> list[NewMessage]:
    """A reminder round now (/remind, ``ceping remind``): every open deadline, once a minute.

    Outside quiet hours or when forced the messages go out at once; otherwise they wait
    for the end of the quiet hours (and are dropped if the deadline passes first).
    """
    messages: list[NewMessage] = []
    for round_ in reminders.open_rounds(session=session):
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
