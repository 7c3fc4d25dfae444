"""Who is asking, what a step decided, and the assignment a step works on (问卷作答).

A step loads its assignment under a lock with everything it needs (``load``), refuses when
it is not the asker's or its window is shut, and ends in an ``Outcome`` the handler shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from telegram import Update

from bot.answer_lists import TodoEntry, window_text
from bot.callbacks import Screen, Stage
from bot.common import Context, locale_of, services
from bot.survey_views import DraftState, Survey, View, answered_count, render
from storage import answering as store
from storage.answering import OwnerRow, PhaseRow, PinRow, RoundRow
from storage.db import Session
from storage.models import Assignment, RoundInstrument, RoundPhase, TelegramAccount
from storage.registration import find_account
from storage.remedies import with_rerun
from storage.responses import (
    AssignmentRow,
    DraftRow,
    Held,
    WindowState,
    draft_answers,
    lazy_answers,
    window_state,
)
from surveys.i18n import t
from surveys.instruments import AnswerValue, Instrument, get_instrument

INSPECTION_PHASE = "inspection"


# --- Who is asking, and what a step decided --------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What a handler knows before reading the database: who, when, in which time zone."""

    update: Update
    telegram_user_id: int
    now: datetime
    zone: ZoneInfo

    @classmethod
    def of(cls, update: Update, context: Context, telegram_user_id: int) -> Request:
        """The request of an update, with the Application's clock and time zone."""
        bot = services(context)
        return cls(update, telegram_user_id, bot.now(), bot.settings.zone)

    def asker(self, account: TelegramAccount | OwnerRow | None) -> Asker:
        """The asker, given their account (None: not registered)."""
        locale = locale_of(self.update, account)
        return Asker(self.telegram_user_id, account, locale, self.now, self.zone)

    def asker_in(self, session: Session) -> Asker:
        """The asker, looking their account up."""
        return self.asker(find_account(session, telegram_user_id=self.telegram_user_id))


@dataclass(frozen=True)
class Asker:
    """The registered person behind an update, with the step's clock and display zone."""

    telegram_user_id: int
    account: TelegramAccount | OwnerRow | None
    locale: str
    now: datetime
    zone: ZoneInfo

    @property
    def person_id(self) -> int | None:
        """The asker's person, None when not registered."""
        return self.account.person_id if self.account is not None else None


class Target(Enum):
    """Where a step's screen goes."""

    NOWHERE = "nowhere"
    TAPPED = "tapped"  # edit the message whose button was tapped
    NEW = "new"  # send a new message and remember it as the survey's message


@dataclass(frozen=True)
class Outcome:
    """What to show once the transaction is over: a toast or alert, and a screen.

    A survey screen comes as ``draw``, drawn only after the transaction committed (from
    data read inside it), so building its text and buttons holds no database lock.
    """

    toast: str | None = None
    alert: bool = False
    view: View | None = None
    draw: Callable[[], View] | None = None
    target: Target = Target.NOWHERE
    # Target.NEW: (assignment id, draft revision) under which to record the new message.
    record: tuple[int, int] | None = None
    # Messages (chat id, message id) whose buttons are outdated by a new message: removed.
    strip: tuple[tuple[int, int], ...] = ()

    def screen(self) -> View | None:
        """The screen to show: the view given, or the one drawn now (after the commit)."""
        if self.view is None and self.draw is not None:
            return self.draw()
        return self.view


class Refusal(Exception):
    """The step stops here; ``outcome`` says what the person is told. Nothing is stored."""

    def __init__(self, outcome: Outcome, forged_by: Asker | None = None, **detail: Any) -> None:
        super().__init__(outcome.toast)
        self.outcome = outcome
        self.forged_by = forged_by  # set for forged data, which the handler audits
        self.detail = detail


def forged(asker: Asker, **detail: Any) -> Refusal:
    """A polite alert for data our buttons never carry; the handler audits it."""
    outcome = Outcome(toast=t("answering.forged", asker.locale), alert=True)
    return Refusal(outcome, asker, **detail)


def not_registered(asker: Asker) -> Refusal:
    """An alert telling someone without a binding how to register."""
    return Refusal(Outcome(toast=t("answering.not_registered", asker.locale), alert=True))


# --- Loading and checking ---------------------------------------------------------------------


@dataclass
class Loaded:
    """One assignment with everything a step needs, read after taking its lock."""

    asker: Asker
    assignment: AssignmentRow
    round: RoundRow
    phase: PhaseRow | RoundPhase | None
    instrument: Instrument
    branch_name: str
    draft: DraftRow | None
    _parsed: tuple[tuple[int, int], Mapping[str, AnswerValue]] | None = None

    @property
    def assignment_id(self) -> int:
        """The assignment's id."""
        return self.assignment.id

    @property
    def locale(self) -> str:
        """The asker's language."""
        return self.asker.locale

    @property
    def held(self) -> Held:
        """What this step read under the lock, so the storage writers need not read it again."""
        return Held(self.assignment, self.instrument, self.draft)

    @property
    def answers(self) -> Mapping[str, AnswerValue]:
        """The draft's answers of this revision, each parsed once when first read."""
        key = (id(self.draft), self.draft.revision if self.draft else -1)
        if self._parsed is None or self._parsed[0] != key:
            self._parsed = (key, lazy_answers(self.draft))
        return self._parsed[1]

    def screen(self) -> Screen:
        """The screen the draft is on (question 1 before anything was saved)."""
        if self.draft is None:
            return Screen(0, 0, Stage())
        return Screen(self.draft.revision, self.draft.position, Stage.parse(self.draft.stage))

    def survey(self) -> Survey:
        """The fixed part of this assignment's screens."""
        return Survey(self.assignment_id, self.instrument, self.branch_name, self.locale)

    def later(
        self, screen: Screen | None = None, notice: str | None = None, *, intro: bool = False
    ) -> Callable[[], View]:
        """A screen (the draft's own by default) with the current answers, to draw later:
        the answers and screen are taken now, in the transaction; the text and buttons
        are drawn when called, after the commit."""
        # No copy needed: a save gives the draft a new answers dict, this one stays as read.
        state = DraftState(self.answers, screen or self.screen())
        survey = self.survey()
        return lambda: render(survey, state, notice, intro=intro)


def _pinned(
    assignment: Assignment | AssignmentRow, pin: RoundInstrument | PinRow | None
) -> tuple[Instrument, str]:
    """The instrument version the round pinned, and the phase it belongs to."""
    instrument = get_instrument(assignment.instrument_id, pin.version if pin else None)
    return instrument, pin.phase if pin else instrument.phase


def load(session: Session, request: Request, assignment_id: int) -> Loaded:
    """The asker's assignment, locked, with all a step needs; a Refusal when not theirs."""
    row = store.load_step(session=session, assignment_id=assignment_id)
    owner = row.owner if row is not None else None
    if owner is None or owner.telegram_user_id != request.telegram_user_id:
        asker = request.asker_in(session)
        if asker.account is None:
            raise not_registered(asker)
        raise forged(asker, assignment_id=assignment_id, why="not theirs")
    assignment, round_, pin, phase, branch_name, _, draft = row
    instrument, phase_name = _pinned(assignment, pin)
    if pin is None:
        phase = store.round_phase(
            session=session,
            round_id=assignment.round_id,
            phase=phase_name,
            org_id=assignment.org_id,
        )
    asker = request.asker(owner)
    return Loaded(asker, assignment, round_, phase, instrument, branch_name, draft)


def refuse_unless_answerable(loaded: Loaded) -> None:
    """Refuse when the response is final or the window is shut (nothing is stored then)."""
    locale = loaded.locale
    if loaded.assignment.status == "submitted":
        raise Refusal(Outcome(toast=t("answering.already_submitted", locale), alert=True))
    state = window_state(loaded.round, loaded.phase, loaded.asker.now)
    if state is WindowState.OPEN:
        return
    phase = None if loaded.round.status == "closed" else loaded.phase
    text = window_text(
        state.value,
        opens_at=phase.opens_at if phase else None,
        deadline=phase.deadline if phase else None,
        locale=locale,
        zone=loaded.asker.zone,
    )
    raise Refusal(Outcome(toast=text, alert=True, view=View(text), target=Target.TAPPED))


# --- /surveys ---------------------------------------------------------------------------------


def todo_entries(session: Session, person_id: int, locale: str, now: datetime) -> list[TodoEntry]:
    """The person's assignments in open rounds, with their window and progress."""
    rows, phases, reruns = store.todo_rows(session=session, person_id=person_id)
    entries = []
    for assignment, round_, pin, branch_name, draft in rows:
        instrument, phase_name = _pinned(assignment, pin)
        # A branch in 补测 answers until its own deadline, as its taps are judged.
        phase = with_rerun(
            phases.get((round_.id, phase_name)), reruns.get((round_.id, assignment.org_id))
        )
        entries.append(
            TodoEntry(
                assignment_id=assignment.id,
                round_id=round_.id,
                title=instrument.display_title(locale),
                branch_name=branch_name,
                answered=answered_count(instrument, draft_answers(draft)),
                total=len(instrument.items),
                status=assignment.status,
                window=window_state(round_, phase, now).value,
                opens_at=phase.opens_at if phase else None,
                deadline=phase.deadline if phase else None,
                inspection=phase_name == INSPECTION_PHASE,
                scored=instrument.is_scored,
            )
        )
    return entries
