"""/veto and /members_only as button flows (issue 14): branch → condition → note → confirm.

An organizer picks the branch (paged buttons of the branches they organize), for a veto the
condition (short labels on the buttons, the source's full text on the screen), types a note
(or taps 跳过; a members-only branch needs its reason, docs/rules.md §6.2), and sees what will
happen to the grade before ✅ records it. The typed command line still works and stops at the
same confirmation: ``/veto 东盾村 违纪 说明`` (a condition by number, name or unambiguous
prefix), ``/members_only 东方 原因``.

Where the flow stands is one ``PendingInput`` row (kind 'flag'): text typed while a button is
expected gets a hint and changes nothing; the confirm and skip taps act only on the step the
row says is open, so a stale or forged one records nothing. A veto, once recorded, is kept:
storage has no way to withdraw one (nor a members-only mark), so neither does this flow.
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update

from bot import report_views as views
from bot.common import Context
from bot.report_callbacks import Flag, FlagStep, FlagTap, VetoConditionTap
from bot.reports.common import (
    Answer,
    Refused,
    Request,
    button,
    name_of,
    organizer,
    pick_branch,
    refuse,
    request_of,
)
from storage.db import Session
from storage.grading import (
    GradingError,
    VetoEffect,
    mark_members_only,
    members_only_reason,
    record_veto,
    veto_effect,
    vetoes_of,
)
from storage.pending import clear_pending, pending_for, set_pending
from storage.reports import org_names
from surveys.i18n import t
from surveys.rules import Grade
from surveys.vetoes import VETO_CONDITIONS, match_veto_conditions, veto_by_number, veto_number

FLAG = "flag"  # the PendingInput kind of these flows
PAGE_SIZE = 8
MAX_NOTE = 500  # Veto.note and Organization.members_only_reason hold 500 characters
TOKENS = 10**12  # a step's token, on its 跳过 and ✅ buttons
ACTIONS = {Flag.VETO: "grade.veto", Flag.MEMBERS_ONLY: "org.members_only"}
_KEYS = {Flag.VETO: "veto", Flag.MEMBERS_ONLY: "members_only"}


class Step(StrEnum):
    """Where a flow waits: for a tap (branch, condition, confirm) or for text (note)."""

    BRANCH = "branch"
    CONDITION = "condition"
    NOTE = "note"
    CONFIRM = "confirm"


def _key(flag: Flag, name: str) -> str:
    return f"flags.{_KEYS[flag]}.{name}"


def _request(session: Session, update: Update, context: Context, flag: Flag) -> Request:
    return request_of(session, update, context, ACTIONS[flag], organizer)


def _organized(session: Session, update: Update, request: Request, flag: Flag, org_id: int) -> int:
    """The branch id if the asker organizes it; else Refused (audited, naming the id)."""
    if not request.scope.organizes(org_id):
        raise refuse(session, update, request.viewer, ACTIONS[flag], target=f"org:{org_id}")
    return org_id


def _wait(session: Session, request: Request, flag: Flag, step: Step, **data: Any) -> int:
    """Remember the open step (replacing any earlier one of this person); return its token.

    跳过 and ✅ carry the token, not the branch: only the buttons of the screen that opened
    this very step act, so an older confirmation (another condition, another note) tapped
    later is stale instead of recording what the newer screen showed.
    """
    token = secrets.randbelow(TOKENS) + 1
    set_pending(
        session,
        person_id=request.person_id,
        kind=FLAG,
        data={"flag": flag.value, "step": step.value, "token": token, **data},
        now=request.now,
    )
    return token


def _stale(locale: str) -> Answer:
    text = t("report.stale_button", locale)
    return Answer(toast=text, alert=True)


def _cancel_row(flag: Flag, locale: str) -> list[InlineKeyboardButton]:
    return [button(t("flags.cancel_button", locale), FlagTap(flag, FlagStep.CANCEL, 0))]


# --- Step 1: the branch ---------------------------------------------------------------------


def branch_picker(session: Session, request: Request, flag: Flag, page: int) -> Answer:
    """One page of the branches the organizer decides about, by name; stale past the end."""
    locale = request.locale
    names = org_names(session=session, org_ids=request.scope.organizer_orgs)
    ordered = sorted(names, key=lambda org_id: (names[org_id], org_id))
    pages = max(1, -(-len(ordered) // PAGE_SIZE))
    if page >= pages:
        return _stale(locale)
    if not ordered:
        return Answer.text(t("flags.no_branches", locale))
    shown = ordered[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    labels = [
        button(views.short_name(names[o], 16), FlagTap(flag, FlagStep.BRANCH, o)) for o in shown
    ]
    rows = [labels[i : i + 2] for i in range(0, len(labels), 2)]
    turn = []
    if page > 0:
        turn.append(button(t("flags.prev_page", locale), FlagTap(flag, FlagStep.PAGE, page - 1)))
    if page + 1 < pages:
        turn.append(button(t("flags.next_page", locale), FlagTap(flag, FlagStep.PAGE, page + 1)))
    rows += [turn] if turn else []
    rows.append(_cancel_row(flag, locale))
    _wait(session, request, flag, Step.BRANCH)
    title = t(_key(flag, "title"), locale)
    text = t("flags.choose_branch", locale, title=title, page=page + 1, pages=pages)
    return Answer.text(text, InlineKeyboardMarkup(rows))


def _after_branch(session: Session, request: Request, flag: Flag, org_id: int) -> Answer:
    if flag is Flag.VETO:
        return condition_picker(session, request, org_id)
    return ask_reason(session, request, org_id)


# --- Step 2 (veto): the condition -------------------------------------------------------------


def condition_picker(
    session: Session, request: Request, org_id: int, unknown: str | None = None
) -> Answer:
    """The four conditions in full on the screen, the ones not yet recorded as buttons."""
    locale = request.locale
    recorded = vetoes_of(session, round_id=request.round_id, org_id=org_id)
    lines = [t("flags.veto.unknown", locale, text=views.esc(unknown))] if unknown else []
    lines.append(t("flags.veto.for_branch", locale, name=views.esc(name_of(session, org_id))))
    lines.append(t("flags.veto.source", locale))
    for code in VETO_CONDITIONS:
        full = t(f"veto.full.{code}", locale)
        lines.append(f"{veto_number(code)}. {full}")
    if recorded:
        names = t("report.list_separator", locale).join(t(f"veto.{c}", locale) for c in recorded)
        lines.append(t("flags.veto.recorded_list", locale, conditions=names))
    open_codes = [code for code in VETO_CONDITIONS if code not in recorded]
    if not open_codes:
        clear_pending(session, person_id=request.person_id)
        lines.append(t("flags.veto.all_recorded", locale))
        return Answer.text("\n".join(lines))
    lines.append(t("flags.veto.choose", locale))
    labels = [
        button(t(f"veto.short.{c}", locale), VetoConditionTap(org_id, veto_number(c)))
        for c in open_codes
    ]
    rows = [labels[i : i + 2] for i in range(0, len(labels), 2)]
    rows.append(_cancel_row(Flag.VETO, locale))
    _wait(session, request, Flag.VETO, Step.CONDITION, org_id=org_id)
    return Answer.text("\n".join(lines), InlineKeyboardMarkup(rows))


def condition_tap(
    session: Session, update: Update, context: Context, tap: VetoConditionTap
) -> Answer:
    """A condition is chosen: ask for the note (or 跳过); an already recorded one is refused."""
    request = _request(session, update, context, Flag.VETO)
    org_id = _organized(session, update, request, Flag.VETO, tap.org_id)
    code = veto_by_number(tap.number)
    if code is None:  # the codec lets no such number through; kept for the type checker
        return _stale(request.locale)
    if code in vetoes_of(session, round_id=request.round_id, org_id=org_id):
        text = t("flags.veto.already", request.locale)
        return Answer(toast=text, alert=True)
    token = _wait(session, request, Flag.VETO, Step.NOTE, org_id=org_id, condition=code)
    locale = request.locale
    text = t(
        "flags.veto.ask_note",
        locale,
        name=views.esc(name_of(session, org_id)),
        condition=t(f"veto.full.{code}", locale),
    )
    skip = button(t("flags.skip_button", locale), FlagTap(Flag.VETO, FlagStep.SKIP, token))
    return Answer.text(text, InlineKeyboardMarkup([[skip], _cancel_row(Flag.VETO, locale)]))


# --- Step 2 (members only): the reason ------------------------------------------------------


def ask_reason(session: Session, request: Request, org_id: int) -> Answer:
    """Ask for the reason the masses cannot be reached (required, docs/rules.md §6.2)."""
    locale = request.locale
    lines = [t("flags.members_only.ask_reason", locale, name=views.esc(name_of(session, org_id)))]
    current = members_only_reason(session, org_id=org_id)
    if current:
        lines.append(t("flags.members_only.current", locale, reason=views.esc(current)))
    _wait(session, request, Flag.MEMBERS_ONLY, Step.NOTE, org_id=org_id)
    markup = InlineKeyboardMarkup([_cancel_row(Flag.MEMBERS_ONLY, locale)])
    return Answer.text("\n".join(lines), markup)


# --- Step 3: the confirmation, with the effect ------------------------------------------------


def _grade(grade: Grade | None, locale: str) -> str:
    return views.grade_name(grade, locale)


def _effect_lines(effect: VetoEffect, locale: str) -> list[str]:
    """What the veto does to the grade, as the grading code computes it (§5.6)."""
    lines = [t("flags.veto.rule", locale)]
    if not effect.in_round:
        return [*lines, t("flags.veto.not_in_round", locale)]
    if effect.before is None and effect.after is None:
        lines.append(t("flags.veto.no_proposal", locale))
    elif effect.before is effect.after:
        lines.append(t("flags.veto.same", locale, grade=_grade(effect.before, locale)))
    else:
        before, after = _grade(effect.before, locale), _grade(effect.after, locale)
        lines.append(t("flags.veto.change", locale, before=before, after=after))
    if effect.provisional and effect.before is not None:
        lines.append(t("flags.provisional", locale))
    if effect.others:
        lines.append(t("flags.veto.others", locale))
        lines += [
            t(
                "flags.veto.other_change",
                locale,
                name=views.esc(change.name),
                before=_grade(change.before, locale),
                after=_grade(change.after, locale),
            )
            for change in effect.others
        ]
    if effect.decided is Grade.GOOD:
        lines.append(t("flags.veto.decided_good", locale))
    elif effect.decided is not None:
        lines.append(t("flags.veto.decided", locale, grade=_grade(effect.decided, locale)))
    return lines


def confirm_screen(
    session: Session, request: Request, flag: Flag, org_id: int, note: str | None, code: str = ""
) -> Answer:
    """What will be recorded and what it will do, with ✅ and ✖️; nothing is written yet."""
    locale = request.locale
    lines = [
        t(_key(flag, "confirm_title"), locale),
        t("flags.branch_line", locale, name=views.esc(name_of(session, org_id))),
    ]
    if flag is Flag.VETO:
        lines.append(
            t("flags.veto.condition_line", locale, condition=t(f"veto.full.{code}", locale))
        )
        shown = views.esc(note) if note else t("flags.veto.no_note", locale)
        lines.append(t("flags.veto.note_line", locale, note=shown))
        effect = veto_effect(
            session, round_id=request.round_id, org_id=org_id, condition=code, now=request.now
        )
        lines += _effect_lines(effect, locale)
    else:
        lines.append(t("flags.members_only.reason_line", locale, reason=views.esc(note or "")))
        lines.append(t("flags.members_only.effect", locale))
    token = _wait(session, request, flag, Step.CONFIRM, org_id=org_id, condition=code, note=note)
    label = t(_key(flag, "confirm_button"), locale)
    confirm = button(label, FlagTap(flag, FlagStep.CONFIRM, token))
    markup = InlineKeyboardMarkup([[confirm, *_cancel_row(flag, locale)]])
    return Answer.text("\n".join(lines), markup)


def _note_problem(text: str, locale: str) -> Answer | None:
    """A hint when the typed note cannot be kept as it is; None when it can."""
    if not text:
        return Answer.text(t("flags.empty_note", locale))
    if len(text) > MAX_NOTE:
        return Answer.text(t("hardening.text_too_long", locale, length=len(text), limit=MAX_NOTE))
    return None


def _record(session: Session, request: Request, flag: Flag, data: dict[str, Any]) -> Answer:
    """Write the veto or the members-only mark (audited by storage) and end the flow."""
    locale, org_id = request.locale, int(data["org_id"])
    clear_pending(session, person_id=request.person_id)
    try:
        if flag is Flag.VETO:
            veto = record_veto(
                session,
                round_id=request.round_id,
                org_id=org_id,
                condition=str(data["condition"]),
                note=data.get("note"),
                person_id=request.person_id,
                now=request.now,
            )
            condition = t(f"veto.{veto.condition}", locale)
            name = views.esc(name_of(session, org_id))
            return Answer.text(t("report.veto_recorded", locale, name=name, condition=condition))
        org = mark_members_only(
            session,
            org_id=org_id,
            reason=str(data.get("note") or ""),
            person_id=request.person_id,
            now=request.now,
        )
    except GradingError as error:
        key = "flags.veto.already" if error.code == "already_recorded" else None
        text = t(key or f"report.error.{error.code}", locale)
        return Answer(texts=[text], toast=text, alert=True)
    reason = views.esc(org.members_only_reason or "")
    return Answer.text(
        t("report.members_only_recorded", locale, name=views.esc(org.name), reason=reason)
    )


# --- Taps and typed text --------------------------------------------------------------------


def _open_step(session: Session, request: Request, flag: Flag) -> dict[str, Any] | None:
    """The data of this person's open step of this flow, if any."""
    pending = pending_for(session, person_id=request.person_id, now=request.now)
    if pending is None or pending.kind != FLAG or pending.data.get("flag") != flag.value:
        return None
    return pending.data


def flag_tap(session: Session, update: Update, context: Context, tap: FlagTap) -> Answer:
    """A page, a branch, 跳过, ✅ or ✖️ of a flow (roles and scope checked again)."""
    request = _request(session, update, context, tap.flag)
    locale = request.locale
    match tap.step:
        case FlagStep.PAGE:
            return branch_picker(session, request, tap.flag, tap.number)
        case FlagStep.BRANCH:
            org_id = _organized(session, update, request, tap.flag, tap.number)
            return _after_branch(session, request, tap.flag, org_id)
        case FlagStep.CANCEL:
            if _open_step(session, request, tap.flag) is not None:
                clear_pending(session, person_id=request.person_id)
            return Answer.text(t("flags.cancelled", locale))
    data = _open_step(session, request, tap.flag)
    wanted = Step.NOTE if tap.step is FlagStep.SKIP else Step.CONFIRM
    if (
        data is None
        or data.get("step") != wanted.value
        or data.get("token") != tap.number
        or (tap.step is FlagStep.SKIP and tap.flag is not Flag.VETO)
    ):
        return _stale(locale)
    org_id = _organized(session, update, request, tap.flag, int(data["org_id"]))
    if tap.step is FlagStep.SKIP:
        return confirm_screen(session, request, Flag.VETO, org_id, None, data["condition"])
    return _record(session, request, tap.flag, data)


def continue_flag(
    session: Session,
    update: Update,
    context: Context,
    person_id: int,
    data: dict[str, Any],
    text: str,
) -> Answer:
    """Text while a flow is open: the note or reason it waits for, else a hint to tap."""
    try:
        return _typed_note(session, update, context, data, text)
    except Refused as refused:  # no longer allowed: the flow ends, the refusal is audited
        clear_pending(session, person_id=person_id)
        return refused.answer


def _typed_note(
    session: Session, update: Update, context: Context, data: dict[str, Any], text: str
) -> Answer:
    flag = Flag(str(data.get("flag")))
    request = _request(session, update, context, flag)
    if data.get("step") != Step.NOTE.value:
        return Answer.text(t("flags.tap_a_button", request.locale))
    org_id = _organized(session, update, request, flag, int(data["org_id"]))
    note = text.strip()
    problem = _note_problem(note, request.locale)
    if problem is not None:
        return problem
    return confirm_screen(session, request, flag, org_id, note, str(data.get("condition", "")))


# --- The commands ---------------------------------------------------------------------------


def _typed_branch(
    session: Session, update: Update, request: Request, flag: Flag, query: str
) -> int | Answer:
    """The branch a typed name means, if the organizer decides about it; else the answer."""
    picked = pick_branch(session, update, request, query, ACTIONS[flag], None)
    if isinstance(picked, Answer):
        return picked
    return _organized(session, update, request, flag, picked)


def veto_answer(session: Session, update: Update, context: Context, args: list[str]) -> Answer:
    """/veto [branch [condition [note]]]: the picker for whatever is not typed, then confirm."""
    request = _request(session, update, context, Flag.VETO)
    if not args:
        return branch_picker(session, request, Flag.VETO, 0)
    picked = _typed_branch(session, update, request, Flag.VETO, args[0])
    if isinstance(picked, Answer) or len(args) == 1:
        return picked if isinstance(picked, Answer) else condition_picker(session, request, picked)
    found = match_veto_conditions(args[1])
    recorded = vetoes_of(session, round_id=request.round_id, org_id=picked)
    if len(found) != 1 or found[0] in recorded:
        unknown = args[1] if len(found) != 1 else None
        return condition_picker(session, request, picked, unknown)
    note = " ".join(args[2:]).strip()
    problem = _note_problem(note, request.locale) if note else None
    if problem is not None:
        return problem
    return confirm_screen(session, request, Flag.VETO, picked, note or None, found[0])


def members_only_answer(
    session: Session, update: Update, context: Context, args: list[str]
) -> Answer:
    """/members_only [branch [reason]]: the picker or the reason asked for, then confirm."""
    request = _request(session, update, context, Flag.MEMBERS_ONLY)
    if not args:
        return branch_picker(session, request, Flag.MEMBERS_ONLY, 0)
    picked = _typed_branch(session, update, request, Flag.MEMBERS_ONLY, args[0])
    if isinstance(picked, Answer):
        return picked
    reason = " ".join(args[1:]).strip()
    if not reason:
        return ask_reason(session, request, picked)
    problem = _note_problem(reason, request.locale)
    if problem is not None:
        return problem
    return confirm_screen(session, request, Flag.MEMBERS_ONLY, picked, reason)
