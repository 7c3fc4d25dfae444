"""Answering instruments one question at a time, edited in place (问卷作答).

Every tap and every text runs one short transaction that (1) locks the assignment,
(2) checks everything against the database — whose assignment, submitted or not, the
round and phase window, the draft's revision, position and stage — and (3) saves at once.
Only then does the bot answer the callback and edit the message. No handler keeps state
in memory: the Draft row says what the next tap or text means, so a restart or a second
bot process on the same database changes nothing for the person answering.

Satisfaction answers are anonymous (see the storage.models docstring): they live only in
the Draft until ``storage.responses.submit`` turns them into counters; this module never
writes them anywhere else and never logs them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.callbacks import (
    Action,
    AnswerTap,
    BadCallback,
    BranchListTap,
    Screen,
    Stage,
    StageName,
    StaleTap,
    StartTap,
    Tap,
    check_tap,
    decode,
    option_index,
    tap_amount,
)
from bot.common import (
    PRIVATE,
    Actor,
    Context,
    MenuCommand,
    audit,
    in_transaction,
    locale_of,
    services,
)
from bot.survey_views import (
    DraftState,
    Survey,
    TodoEntry,
    View,
    answered_count,
    branch_list_view,
    missing_text,
    render,
    thanks_view,
    todo_view,
    window_text,
)
from storage import answering as store
from storage.db import Session
from storage.models import (
    ROLES,
    Assignment,
    Draft,
    Round,
    RoundInstrument,
    RoundPhase,
    TelegramAccount,
)
from storage.registration import find_account
from storage.responses import (
    AlreadySubmitted,
    Held,
    Incomplete,
    StaleDraft,
    WindowState,
    clear_answer,
    draft_answers,
    save_answer,
    submit,
    update_draft_view,
    window_state,
)
from storage.settings import settings as process_settings
from surveys.i18n import t
from surveys.instruments import (
    AnswerError,
    AnswerValue,
    Instrument,
    Item,
    get_instrument,
    parse_number,
    validate_answer,
)

COMMANDS = (MenuCommand("surveys", "answering.command.surveys", roles=frozenset(ROLES)),)

CALLBACK_PATTERN = r"^[asl]:"
"""Callback data this module owns (shapes in bot.callbacks); anything else is not ours."""

INSPECTION_PHASE = "inspection"


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The handlers of this module, in the order they must be registered."""
    return [
        CommandHandler("surveys", show_surveys, filters=PRIVATE),
        CallbackQueryHandler(on_tap, pattern=CALLBACK_PATTERN),
        MessageHandler(PRIVATE & filters.TEXT & ~filters.COMMAND, on_text),
    ]


def fallback_handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """To register after every module's handlers: taps on buttons no module drew."""
    return [CallbackQueryHandler(on_unknown_tap)]


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

    def asker(self, account: TelegramAccount | None) -> Asker:
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
    account: TelegramAccount | None
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
    """What to show once the transaction is over: a toast or alert, and a screen."""

    toast: str | None = None
    alert: bool = False
    view: View | None = None
    target: Target = Target.NOWHERE
    # Target.NEW: (assignment id, draft revision) under which to record the new message.
    record: tuple[int, int] | None = None
    # Messages (chat id, message id) whose buttons are outdated by a new message: removed.
    strip: tuple[tuple[int, int], ...] = ()


class Refusal(Exception):
    """The step stops here; ``outcome`` says what the person is told. Nothing is stored."""

    def __init__(self, outcome: Outcome, forged_by: Asker | None = None, **detail: Any) -> None:
        super().__init__(outcome.toast)
        self.outcome = outcome
        self.forged_by = forged_by  # set for forged data, which the handler audits
        self.detail = detail


def _forged(asker: Asker, **detail: Any) -> Refusal:
    """A polite alert for data our buttons never carry; the handler audits it."""
    outcome = Outcome(toast=t("answering.forged", asker.locale), alert=True)
    return Refusal(outcome, asker, **detail)


def _not_registered(asker: Asker) -> Refusal:
    """An alert telling someone without a binding how to register."""
    return Refusal(Outcome(toast=t("answering.not_registered", asker.locale), alert=True))


# --- Loading and checking ---------------------------------------------------------------------


@dataclass
class Loaded:
    """One assignment with everything a step needs, read after taking its lock."""

    asker: Asker
    assignment: Assignment
    round: Round
    phase: RoundPhase | None
    instrument: Instrument
    branch_name: str
    draft: Draft | None
    _parsed: tuple[tuple[int, int], dict[str, AnswerValue]] | None = None

    @property
    def assignment_id(self) -> int:
        """The assignment's id (always set once loaded)."""
        assert self.assignment.id is not None
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
    def answers(self) -> dict[str, AnswerValue]:
        """The draft's answers, parsed once per draft revision."""
        key = (id(self.draft), self.draft.revision if self.draft else -1)
        if self._parsed is None or self._parsed[0] != key:
            self._parsed = (key, draft_answers(self.draft))
        return self._parsed[1]

    def screen(self) -> Screen:
        """The screen the draft is on (question 1 before anything was saved)."""
        if self.draft is None:
            return Screen(0, 0, Stage())
        return Screen(self.draft.revision, self.draft.position, Stage.parse(self.draft.stage))

    def survey(self) -> Survey:
        """The fixed part of this assignment's screens."""
        return Survey(self.assignment_id, self.instrument, self.branch_name, self.locale)

    def render(self, screen: Screen | None = None, notice: str | None = None) -> View:
        """A screen (the draft's own by default) drawn with the current answers."""
        state = DraftState(self.answers, screen or self.screen())
        return render(self.survey(), state, notice)


def _pinned(assignment: Assignment, pin: RoundInstrument | None) -> tuple[Instrument, str]:
    """The instrument version the round pinned, and the phase it belongs to."""
    instrument = get_instrument(assignment.instrument_id, pin.version if pin else None)
    return instrument, pin.phase if pin else instrument.phase


def _load(session: Session, request: Request, assignment_id: int) -> Loaded:
    """The asker's assignment, locked, with all a step needs; a Refusal when not theirs."""
    row = store.load_step(session=session, assignment_id=assignment_id)
    owner = row.owner if row is not None else None
    if owner is None or owner.telegram_user_id != request.telegram_user_id:
        asker = request.asker_in(session)
        if asker.account is None:
            raise _not_registered(asker)
        raise _forged(asker, assignment_id=assignment_id, why="not theirs")
    assignment, round_, pin, phase, branch_name, _, draft = row
    instrument, phase_name = _pinned(assignment, pin)
    if pin is None:
        phase = store.round_phase(session=session, round_id=assignment.round_id, phase=phase_name)
    asker = request.asker(owner)
    return Loaded(asker, assignment, round_, phase, instrument, branch_name, draft)


def _refuse_unless_answerable(loaded: Loaded) -> None:
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
    rows, phases = store.todo_rows(session=session, person_id=person_id)
    entries = []
    for assignment, round_, pin, branch_name, draft in rows:
        instrument, phase_name = _pinned(assignment, pin)
        phase = phases.get((round_.id, phase_name))
        entries.append(
            TodoEntry(
                assignment_id=assignment.id,
                round_id=round_.id,
                title=instrument.title.get(locale),
                branch_name=branch_name,
                answered=answered_count(instrument, draft_answers(draft)),
                total=len(instrument.items),
                status=assignment.status,
                window=window_state(round_, phase, now).value,
                opens_at=phase.opens_at if phase else None,
                deadline=phase.deadline if phase else None,
                inspection=phase_name == INSPECTION_PHASE,
            )
        )
    return entries


def todo_text_and_keyboard(
    session: Session, person_id: int, locale: str, now: datetime, zone: ZoneInfo | None = None
) -> tuple[str, InlineKeyboardMarkup | None]:
    """What this person still has to answer, with deadlines and progress, and a button each."""
    zone = zone or process_settings().zone
    view = todo_view(todo_entries(session, person_id, locale, now), locale, zone)
    return view.text, view.keyboard


async def show_surveys(update: Update, context: Context) -> None:
    """/surveys: the to-do list of the open rounds."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return

    request = Request.of(update, context, user.id)

    def read(session: Session) -> View:
        asker = request.asker_in(session)
        if asker.person_id is None:
            return View(t("answering.not_registered", asker.locale))
        text, keyboard = todo_text_and_keyboard(
            session, asker.person_id, asker.locale, asker.now, asker.zone
        )
        return View(text, keyboard)

    view = await in_transaction(context, read)
    await context.bot.send_message(chat.id, view.text, reply_markup=view.keyboard)


# --- Taps -------------------------------------------------------------------------------------


async def on_tap(update: Update, context: Context) -> None:
    """A button of ours: check it against the database, apply it, then show the result."""
    query = update.callback_query
    if query is None:
        return
    message = query.message if isinstance(query.message, Message) else None
    user_id = query.from_user.id

    request = Request.of(update, context, user_id)

    def step(session: Session) -> Outcome:
        try:
            return _apply_tap(session, request, decode(query.data), message)
        except BadCallback as error:
            refusal = _forged(request.asker_in(session), why=str(error))
        except Refusal as caught:
            refusal = caught
        if refusal.forged_by is not None:
            actor = Actor(user_id, refusal.forged_by.person_id)
            # Whatever the step touched before spotting the forgery is undone: only the
            # audit row is written.
            session.rollback()
            _audit_forgery(session, actor, query.data, refusal.detail)
        return refusal.outcome

    outcome = await in_transaction(context, step)
    await _show(context, outcome, query=query, chat_id=message.chat_id if message else user_id)


async def on_unknown_tap(update: Update, context: Context) -> None:
    """A tap whose data no module understands: garbage or forged. Alert and audit."""
    query = update.callback_query
    if query is None:
        return

    request = Request.of(update, context, query.from_user.id)

    def record(session: Session) -> str:
        asker = request.asker_in(session)
        actor = Actor(asker.telegram_user_id, asker.person_id)
        _audit_forgery(session, actor, query.data, {"why": "unknown shape"})
        return asker.locale

    locale = await in_transaction(context, record)
    await query.answer(t("answering.forged", locale), show_alert=True)


def _audit_forgery(
    session: Session, actor: Actor, data: str | None, detail: dict[str, Any]
) -> None:
    """A refused tap in the audit log (who, which data, why)."""
    audit(
        session,
        actor=actor,
        action="answer.callback",
        target=_without_argument(data or "")[:200],
        outcome="refused",
        detail={key: str(value) for key, value in detail.items()},
    )


def _without_argument(data: str) -> str:
    """Callback data without a survey tap's argument: a refused tap may still be a choice."""
    return data.rsplit(":", 1)[0] if data.startswith("a:") and data.count(":") >= 5 else data


def _apply_tap(session: Session, request: Request, tap: Tap, message: Message | None) -> Outcome:
    """Dispatch a decoded tap (inside the transaction)."""
    if isinstance(tap, BranchListTap):
        return _branch_list(session, request.asker_in(session), tap.round_id)
    loaded = _load(session, request, tap.assignment_id)
    _refuse_unless_answerable(loaded)
    if isinstance(tap, StartTap):
        return _start(session, loaded, message)
    return _answer_tap(session, loaded, tap, message)


def _branch_list(session: Session, asker: Asker, round_id: int) -> Outcome:
    """An inspector's assigned branches in a round, with status."""
    if asker.person_id is None:
        raise _not_registered(asker)
    entries = [
        entry
        for entry in todo_entries(session, asker.person_id, asker.locale, asker.now)
        if entry.round_id == round_id and entry.inspection
    ]
    if not entries:
        raise _forged(asker, round_id=round_id, why="no inspection assignments")
    view = branch_list_view(entries, asker.locale, asker.zone)
    return Outcome(view=view, target=Target.TAPPED)


def _start(session: Session, loaded: Loaded, message: Message | None) -> Outcome:
    """Start or resume: draw the draft's screen on the tapped message and remember it."""
    fresh = loaded.draft is None
    previous = _shown_message(loaded.draft)
    loaded.draft = update_draft_view(
        session,
        assignment_id=loaded.assignment_id,
        position=0 if fresh else None,
        stage=Stage().encode() if fresh else None,
        chat_id=message.chat_id if message else None,
        message_id=message.message_id if message else None,
        held=loaded.held,
    )
    now_shown = _shown_message(loaded.draft)
    stale = (previous,) if previous is not None and previous != now_shown else ()
    return Outcome(view=loaded.render(), target=Target.TAPPED, strip=stale)


def _shown_message(draft: Draft | None) -> tuple[int, int] | None:
    """(chat id, message id) of the message showing the draft's screen, if known."""
    if draft is None or draft.chat_id is None or draft.message_id is None:
        return None
    return draft.chat_id, draft.message_id


def _answer_tap(
    session: Session, loaded: Loaded, tap: AnswerTap, message: Message | None
) -> Outcome:
    """Check a survey tap against the draft's screen and apply it."""
    screen = loaded.screen()
    try:
        check_tap(tap, loaded.instrument, screen)
    except StaleTap:
        return _stale(loaded, message)
    except BadCallback as error:
        raise _forged(loaded.asker, assignment_id=tap.assignment_id, why=str(error)) from None
    try:
        return _act(session, loaded, tap, screen)
    except StaleDraft:
        # Cannot happen under the lock; kept so a surprise is an old button, not a crash.
        return Outcome(toast=t("answering.stale", loaded.locale))


def _stale(loaded: Loaded, message: Message | None) -> Outcome:
    """An old button or a double tap: say so, change nothing, show the current screen."""
    toast = t("answering.stale", loaded.locale)
    draft = loaded.draft
    if draft is not None and message is not None and draft.message_id == message.message_id:
        return Outcome(toast=toast)  # the tapped message already is the current screen
    tapped = ((message.chat_id, message.message_id),) if message is not None else ()
    return _resend(loaded, toast=toast, also_strip=tapped)


def _resend(
    loaded: Loaded,
    *,
    toast: str | None = None,
    notice: str | None = None,
    also_strip: tuple[tuple[int, int], ...] = (),
) -> Outcome:
    """Show the current screen as a new message; it becomes the survey's message.

    Recording the new message id bumps the revision once more, so the buttons are drawn
    for that revision already. The previous survey message loses its (now old) buttons.
    """
    screen = loaded.screen()
    upcoming = replace(screen, revision=screen.revision + 1)
    shown = _shown_message(loaded.draft)
    previous = (shown,) if shown is not None else ()
    return Outcome(
        toast=toast,
        view=loaded.render(upcoming, notice),
        target=Target.NEW,
        record=(loaded.assignment_id, screen.revision),
        strip=tuple(dict.fromkeys(previous + also_strip)),
    )


def _after_answer(stage: Stage, position: int, count: int) -> tuple[int, Stage]:
    """Where an answer leads: the next question, or the review at the end or after an edit."""
    if stage.from_review or position + 1 >= count:
        return position, Stage(StageName.REVIEW)
    return position + 1, Stage()


def _save(session: Session, loaded: Loaded, item: Item, value: AnswerValue) -> Draft:
    """Keep one answer and move on, in this transaction."""
    screen = loaded.screen()
    position, stage = _after_answer(screen.stage, screen.position, len(loaded.instrument.items))
    loaded.draft = save_answer(
        session,
        assignment_id=loaded.assignment_id,
        item_id=item.id,
        value=value,
        stage=stage.encode(),
        position=position,
        expected_revision=screen.revision,
        held=loaded.held,
    )
    return loaded.draft


def _move(session: Session, loaded: Loaded, position: int, stage: Stage) -> Draft:
    """Go to another screen without changing answers."""
    loaded.draft = update_draft_view(
        session,
        assignment_id=loaded.assignment_id,
        position=position,
        stage=stage.encode(),
        expected_revision=loaded.screen().revision,
        held=loaded.held,
    )
    return loaded.draft


def _act(session: Session, loaded: Loaded, tap: AnswerTap, screen: Screen) -> Outcome:
    """Apply a checked tap; the tapped message then shows the draft's new screen."""
    items = loaded.instrument.items
    item = items[min(screen.position, len(items) - 1)]
    stage = screen.stage
    if tap.action is Action.CHOOSE:
        _save(session, loaded, item, AnswerValue(choice=item.options[option_index(tap)].id))
    elif tap.action is Action.POINTS:
        _save(session, loaded, item, AnswerValue(points=tap_amount(tap)))
    elif tap.action is Action.NO_DEDUCTION:
        _save(session, loaded, item, AnswerValue(deduction=Decimal(0)))
    elif tap.action is Action.DEDUCT:
        _move(session, loaded, screen.position, stage.but(StageName.AMOUNT))
    elif tap.action is Action.AMOUNT:
        _move(session, loaded, screen.position, stage.but(StageName.REASON, tap_amount(tap)))
    elif tap.action is Action.SKIP:
        _skip(session, loaded, item)
    elif tap.action is Action.BACK:
        _back(session, loaded)
    elif tap.action is Action.EDIT:
        _move(session, loaded, option_index(tap), Stage(from_review=True))
    elif tap.action is Action.SUBMIT:
        missing = missing_text(loaded.instrument, loaded.answers, loaded.locale)
        if missing:
            return Outcome(toast=missing, alert=True)
        _move(session, loaded, screen.position, Stage(StageName.CONFIRM))
    elif tap.action is Action.CONFIRM:
        return _submit(session, loaded)
    else:  # Action.RETURN
        _move(session, loaded, screen.position, Stage(StageName.REVIEW))
    return Outcome(view=loaded.render(), target=Target.TAPPED)


def _skip(session: Session, loaded: Loaded, item: Item) -> None:
    """Leave an optional question blank (forgetting an earlier answer) and move on."""
    if item.id in loaded.answers:
        loaded.draft = clear_answer(
            session,
            assignment_id=loaded.assignment_id,
            item_id=item.id,
            expected_revision=loaded.screen().revision,
            held=loaded.held,
        )
    screen = loaded.screen()
    position, stage = _after_answer(screen.stage, screen.position, len(loaded.instrument.items))
    _move(session, loaded, position, stage)


def _back(session: Session, loaded: Loaded) -> None:
    """上一题, back to the review, or one step back inside a deduction."""
    screen = loaded.screen()
    stage = screen.stage
    if stage.name is StageName.AMOUNT:
        _move(session, loaded, screen.position, stage.but(StageName.QUESTION))
    elif stage.name is StageName.REASON:
        _move(session, loaded, screen.position, stage.but(StageName.AMOUNT))
    elif stage.from_review:
        _move(session, loaded, screen.position, Stage(StageName.REVIEW))
    else:
        _move(session, loaded, screen.position - 1, Stage())


def _submit(session: Session, loaded: Loaded) -> Outcome:
    """确认提交: make the response final (anonymous or named) and say what happens next."""
    try:
        result = submit(
            session, assignment_id=loaded.assignment_id, now=loaded.asker.now, held=loaded.held
        )
    except AlreadySubmitted:
        return Outcome(toast=t("answering.already_submitted", loaded.locale), alert=True)
    except Incomplete:
        notice = missing_text(loaded.instrument, loaded.answers, loaded.locale)
        _move(session, loaded, loaded.screen().position, Stage(StageName.REVIEW))
        return Outcome(view=loaded.render(notice=notice), target=Target.TAPPED)
    next_round = _next_inspection_round(session, loaded)
    view = thanks_view(loaded.survey(), result.total, next_round_id=next_round)
    return Outcome(view=view, target=Target.TAPPED)


def _next_inspection_round(session: Session, loaded: Loaded) -> int | None:
    """The round id when this inspector still has other branches to score in it."""
    if loaded.instrument.phase != INSPECTION_PHASE:
        return None
    others = store.unsubmitted_instruments(
        session=session,
        person_id=loaded.assignment.person_id,
        round_id=loaded.assignment.round_id,
    )
    if any(get_instrument(other).phase == INSPECTION_PHASE for other in others):
        return loaded.assignment.round_id
    return None


# --- Text -------------------------------------------------------------------------------------


async def on_text(update: Update, context: Context) -> None:
    """A text message: the answer the draft's current screen waits for, or a re-ask."""
    message = update.effective_message
    user = update.effective_user
    if message is None or user is None or message.text is None:
        return
    text = message.text

    request = Request.of(update, context, user.id)

    def step(session: Session) -> Outcome:
        assignment_id = store.active_assignment(session=session, telegram_user_id=user.id)
        if assignment_id is None:
            asker = request.asker_in(session)
            key = (
                "answering.not_registered"
                if asker.account is None
                else "answering.no_text_expected"
            )
            return Outcome(view=View(t(key, asker.locale)), target=Target.NEW)
        try:
            loaded = _load(session, request, assignment_id)
            _refuse_unless_answerable(loaded)
        except Refusal as refusal:
            return _as_message(refusal.outcome)
        return _answer_text(session, loaded, text)

    outcome = await in_transaction(context, step)
    await _show(context, outcome, query=None, chat_id=message.chat_id)


def _as_message(outcome: Outcome) -> Outcome:
    """A refusal meant for a tap, said as a message instead (there is no tap to answer)."""
    view = outcome.view or View(outcome.toast or "")
    return Outcome(view=view, target=Target.NEW)


def _answer_text(session: Session, loaded: Loaded, text: str) -> Outcome:
    """Read text as the answer the screen expects; errors and re-asks come as a new message."""
    screen = loaded.screen()
    items = loaded.instrument.items
    if screen.stage.name in (StageName.REVIEW, StageName.CONFIRM) or screen.position >= len(items):
        return _resend(loaded, notice=t("answering.use_buttons", loaded.locale))
    item = items[screen.position]
    try:
        _read_text_answer(session, loaded, item, screen.stage, text)
    except AnswerError as error:
        return _resend(loaded, notice=_error_text(error, loaded.locale, text))
    except _ButtonsExpected:
        return _resend(loaded, notice=t("answering.use_buttons", loaded.locale))
    return _resend(loaded)


class _ButtonsExpected(Exception):
    """The screen waits for a tap, not for text."""


def _read_text_answer(
    session: Session, loaded: Loaded, item: Item, stage: Stage, text: str
) -> None:
    """Store what the text means on this screen (AnswerError when it does not fit)."""
    if stage.name is StageName.REASON:
        amount = stage.amount or Decimal(0)
        _save(session, loaded, item, AnswerValue(deduction=amount, reason=text))
    elif item.kind == "text" and stage.name is StageName.QUESTION:
        _save(session, loaded, item, AnswerValue(text=text))
    elif item.kind == "points" and stage.name is StageName.QUESTION:
        _save(session, loaded, item, AnswerValue(points=parse_number(text)))
    elif item.kind == "deduction":
        _typed_deduction(session, loaded, item, stage, parse_number(text))
    else:
        raise _ButtonsExpected


def _typed_deduction(
    session: Session, loaded: Loaded, item: Item, stage: Stage, amount: Decimal
) -> None:
    """A typed deduction: 0 is 不扣分, more asks for the reason next."""
    if amount == 0:
        _save(session, loaded, item, AnswerValue(deduction=amount))
        return
    # The reason comes later; check the amount now with a placeholder reason.
    validate_answer(item, AnswerValue(deduction=amount, reason="-"))
    _move(session, loaded, loaded.screen().position, stage.but(StageName.REASON, amount))


def _error_text(error: AnswerError, locale: str, text: str) -> str:
    """The catalog text for an AnswerError, its numbers written plainly."""
    params = {
        name: format(value.normalize(), "f") if isinstance(value, Decimal) else value
        for name, value in error.params.items()
    }
    params.setdefault("length", len(text.strip()))
    return t(f"answering.error.{error.code}", locale, **params)


# --- Showing ----------------------------------------------------------------------------------


async def _show(
    context: Context, outcome: Outcome, *, query: CallbackQuery | None, chat_id: int
) -> None:
    """Answer the tap and put the screen where the outcome says: the whole Bot API work."""
    calls = []
    if query is not None:
        calls.append(query.answer(_fit_toast(outcome.toast), show_alert=outcome.alert))
    view = outcome.view
    if view is not None and outcome.target is Target.TAPPED and query is not None:
        calls.append(_edit(query, view))
    await asyncio.gather(*calls)
    if view is not None and (outcome.target is Target.NEW or query is None):
        sent = await context.bot.send_message(chat_id, view.text, reply_markup=view.keyboard)
        if outcome.record is not None:
            await _record_message(context, outcome.record, sent)
    for chat, message_id in outcome.strip:
        await _ignore_unchanged(
            context.bot.edit_message_reply_markup(chat, message_id, reply_markup=None)
        )


MAX_TOAST = 200
"""Telegram's limit on the text of a callback answer."""


def _fit_toast(text: str | None) -> str | None:
    """A callback answer cut to Telegram's 200 characters (a long list of numbers can be)."""
    if text is None or len(text) <= MAX_TOAST:
        return text
    return text[: MAX_TOAST - 1] + "…"


async def _edit(query: CallbackQuery, view: View) -> None:
    """Edit the tapped message in place (a message already showing this screen is fine)."""
    if not isinstance(query.message, Message):
        return
    await _ignore_unchanged(query.message.edit_text(view.text, reply_markup=view.keyboard))


async def _ignore_unchanged(call: Any) -> None:
    """An edit that changes nothing, or of a message gone meanwhile, is not an error here."""
    try:
        await call
    except BadRequest as error:
        reason = str(error).lower()
        if "not modified" not in reason and "not found" not in reason:
            raise


async def _record_message(context: Context, record: tuple[int, int], sent: Message) -> None:
    """Remember the new message as the survey's screen (unless someone moved on meanwhile)."""
    assignment_id, revision = record

    def remember(session: Session) -> None:
        try:
            update_draft_view(
                session,
                assignment_id=assignment_id,
                chat_id=sent.chat_id,
                message_id=sent.message_id,
                expected_revision=revision,
            )
        except (StaleDraft, AlreadySubmitted, LookupError):
            # The draft moved on meanwhile: the message's buttons are simply stale now.
            session.rollback()

    await in_transaction(context, remember)
