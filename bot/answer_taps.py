"""What a tap on a survey button does to the draft: navigate, answer, submit (问卷作答).

Each function runs inside the step's transaction, after ``answer_state.load`` took the
lock and checked the asker; it saves at once and returns the ``Outcome`` to show.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from telegram import Message

from bot.answer_lists import branch_list_view
from bot.answer_state import (
    INSPECTION_PHASE,
    Asker,
    Loaded,
    Outcome,
    Request,
    Target,
    forged,
    load,
    not_registered,
    refuse_unless_answerable,
    todo_entries,
)
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
    option_index,
    tap_amount,
)
from bot.survey_views import missing_text, rest_of_section, thanks_view
from storage import answering as store
from storage.db import Session
from storage.responses import (
    AlreadySubmitted,
    DraftRow,
    Incomplete,
    StaleDraft,
    clear_answer,
    save_answer,
    submit,
    update_draft_view,
)
from surveys.i18n import t
from surveys.instruments import AnswerValue, Item, get_instrument


def apply_tap(session: Session, request: Request, tap: Tap, message: Message | None) -> Outcome:
    """Dispatch a decoded tap (inside the transaction)."""
    if isinstance(tap, BranchListTap):
        return _branch_list(session, request.asker_in(session), tap.round_id)
    loaded = load(session, request, tap.assignment_id)
    refuse_unless_answerable(loaded)
    if isinstance(tap, StartTap):
        return _start(session, loaded, message)
    return _answer_tap(session, loaded, tap, message)


def _branch_list(session: Session, asker: Asker, round_id: int) -> Outcome:
    """An inspector's assigned branches in a round, with status."""
    if asker.person_id is None:
        raise not_registered(asker)
    entries = [
        entry
        for entry in todo_entries(session, asker.person_id, asker.locale, asker.now)
        if entry.round_id == round_id and entry.inspection
    ]
    if not entries:
        raise forged(asker, round_id=round_id, why="no inspection assignments")
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
    # The intro (the anonymity notice) opens a fresh survey once; a resume goes straight on.
    return Outcome(draw=loaded.later(intro=fresh), target=Target.TAPPED, strip=stale)


def _shown_message(draft: DraftRow | None) -> tuple[int, int] | None:
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
        raise forged(loaded.asker, assignment_id=tap.assignment_id, why=str(error)) from None
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
    return resend(loaded, toast=toast, also_strip=tapped)


def resend(
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
        draw=loaded.later(upcoming, notice),
        target=Target.NEW,
        record=(loaded.assignment_id, screen.revision),
        strip=tuple(dict.fromkeys(previous + also_strip)),
    )


def _after_answer(stage: Stage, position: int, count: int) -> tuple[int, Stage]:
    """Where an answer leads: the next question, or the review at the end or after an edit."""
    if stage.from_review or position + 1 >= count:
        return position, Stage(StageName.REVIEW)
    return position + 1, Stage()


def save(session: Session, loaded: Loaded, item: Item, value: AnswerValue) -> DraftRow:
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


def move(session: Session, loaded: Loaded, position: int, stage: Stage) -> DraftRow:
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
        save(session, loaded, item, AnswerValue(choice=item.options[option_index(tap)].id))
    elif tap.action is Action.POINTS:
        save(session, loaded, item, AnswerValue(points=tap_amount(tap)))
    elif tap.action is Action.NO_DEDUCTION:
        save(session, loaded, item, AnswerValue(deduction=Decimal(0)))
    elif tap.action is Action.DEDUCT:
        move(session, loaded, screen.position, stage.but(StageName.AMOUNT))
    elif tap.action is Action.AMOUNT:
        move(session, loaded, screen.position, stage.but(StageName.REASON, tap_amount(tap)))
    elif tap.action is Action.REST:
        _rest_without_deduction(session, loaded)
    elif tap.action is Action.SKIP:
        _skip(session, loaded, item)
    elif tap.action is Action.BACK:
        _back(session, loaded)
    elif tap.action is Action.PICK:
        move(session, loaded, screen.position, Stage(StageName.PICK))
    elif tap.action is Action.EDIT:
        move(session, loaded, option_index(tap), Stage(from_review=True))
    elif tap.action is Action.SUBMIT:
        missing = missing_text(loaded.instrument, loaded.answers, loaded.locale)
        if missing:
            return Outcome(toast=missing, alert=True)
        move(session, loaded, screen.position, Stage(StageName.CONFIRM))
    elif tap.action is Action.CONFIRM:
        return _submit(session, loaded)
    else:  # Action.RETURN
        move(session, loaded, screen.position, Stage(StageName.REVIEW))
    return Outcome(draw=loaded.later(), target=Target.TAPPED)


def _rest_without_deduction(session: Session, loaded: Loaded) -> None:
    """本部分其余各项均不扣分: 不扣分 on every unanswered line left in the section, then on.

    One transaction; lines already answered keep their answer. The next screen is the
    next section's first line, or the review after the last section.
    """
    screen = loaded.screen()
    instrument = loaded.instrument
    rest = rest_of_section(instrument, screen.position)
    expected: int | None = screen.revision
    for item in rest:
        if item.id in loaded.answers:
            continue
        loaded.draft = save_answer(
            session,
            assignment_id=loaded.assignment_id,
            item_id=item.id,
            value=AnswerValue(deduction=Decimal(0)),
            expected_revision=expected,
            held=loaded.held,
        )
        expected = None  # checked once: the later saves are this same step's
    after = screen.position + len(rest)
    if after >= len(instrument.items):
        move(session, loaded, screen.position, Stage(StageName.REVIEW))
    else:
        move(session, loaded, after, Stage())


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
    move(session, loaded, position, stage)


def _back(session: Session, loaded: Loaded) -> None:
    """上一题, back to the review, or one step back inside a deduction."""
    screen = loaded.screen()
    stage = screen.stage
    if stage.name is StageName.AMOUNT:
        move(session, loaded, screen.position, stage.but(StageName.QUESTION))
    elif stage.name is StageName.REASON:
        move(session, loaded, screen.position, stage.but(StageName.AMOUNT))
    elif stage.from_review:
        move(session, loaded, screen.position, Stage(StageName.REVIEW))
    else:
        move(session, loaded, screen.position - 1, Stage())


def _submit(session: Session, loaded: Loaded) -> Outcome:
    """确认提交: make the response final (anonymous or named) and say what happens next."""
    answers = dict(loaded.answers)  # read before submit turns the draft into a response
    try:
        result = submit(
            session, assignment_id=loaded.assignment_id, now=loaded.asker.now, held=loaded.held
        )
    except AlreadySubmitted:
        return Outcome(toast=t("answering.already_submitted", loaded.locale), alert=True)
    except Incomplete:
        notice = missing_text(loaded.instrument, loaded.answers, loaded.locale)
        move(session, loaded, loaded.screen().position, Stage(StageName.REVIEW))
        return Outcome(draw=loaded.later(notice=notice), target=Target.TAPPED)
    next_round = _next_inspection_round(session, loaded)
    survey, total = loaded.survey(), result.total
    return Outcome(
        draw=lambda: thanks_view(survey, total, answers=answers, next_round_id=next_round),
        target=Target.TAPPED,
    )


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
