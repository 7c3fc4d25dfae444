"""/publish: the tally to announce at the branch meeting, stored as a record, and its sign-offs.

docs/rules.md §10 (seed 000 一.5: 当场统计并公布, 村党组织书记和镇工作组领导签字): /publish
freezes the branch's tally as an ``AnnouncedTally`` (``storage.announcements``); the
secretary and the roster's 工作组组长 sign that record, each after a confirmation that names
the record's fingerprint. Once signed, later ballots never change what was signed.
Below the privacy threshold the record holds participation only (§7).
"""

from __future__ import annotations

from collections.abc import Mapping

from telegram import InlineKeyboardButton, Update

from bot import report_views as views
from bot.common import Context
from bot.report_callbacks import BranchTap, BranchView, Capacity, SignTap
from bot.reports.common import (
    Answer,
    Request,
    args_of,
    button,
    choose_from,
    grading_error,
    keyboard,
    name_of,
    pick_branch,
    refuse,
    request_of,
    run,
    seen_branch,
    single_branch,
)
from bot.screen import mini_app_button  # the meeting screen's Mini App button (issue 13)
from storage.announcements import announce, announced, sign_announcement, snapshot
from storage.db import Session
from storage.grading import GradingError, Signature, signatures
from storage.tallies import round_tally, satisfaction_instrument
from surveys.i18n import t
from surveys.instruments import Instrument
from surveys.review import AnnouncedTally, Signer

_SIGNERS = {
    Capacity.SECRETARY: Signer.SECRETARY,
    Capacity.WORK_GROUP_LEADER: Signer.WORK_GROUP_LEADER,
}
FINGERPRINT = 16  # hex digits of the digest a confirmation names (and the tap carries)


def _roles(request: Request, org_id: int) -> set[str]:
    roles = set()
    if request.scope.is_secretary_of(org_id):
        roles.add(Signer.SECRETARY.value)
    if request.scope.leads_work_group_of(org_id):
        roles.add(Signer.WORK_GROUP_LEADER.value)
    return roles


def _sign_buttons(
    request: Request, org_id: int, signed: Mapping[str, object]
) -> list[InlineKeyboardButton]:
    buttons = []
    roles = _roles(request, org_id)
    if "secretary" not in signed and Signer.SECRETARY.value in roles:
        tap = SignTap(org_id, Capacity.SECRETARY)
        buttons.append(button(t("report.sign_secretary_button", request.locale), tap))
    if "work_group_leader" not in signed and Signer.WORK_GROUP_LEADER.value in roles:
        tap = SignTap(org_id, Capacity.WORK_GROUP_LEADER)
        buttons.append(button(t("report.sign_leader_button", request.locale), tap))
    return buttons


def _distribution_lines(record: AnnouncedTally, instrument: Instrument, locale: str) -> list[str]:
    if not record.distribution:
        return []
    lines = [t("report.distribution", locale)]
    for item in instrument.items:
        counts = record.distribution.get(item.id)
        if not counts:
            continue
        options = t("report.list_separator", locale).join(
            f"{option.text.get(locale)} {counts.get(option.id, 0)}" for option in item.options
        )
        label = views.item_label(item, locale)  # named once: "Q6 总体评价", never "Q6 Q6"
        line = t(
            "report.distribution_line", locale, number=item.id.upper(), label=label, options=options
        )
        lines.append(views.esc(line))
    return lines


def _participation_line(record: AnnouncedTally, locale: str) -> str:
    parts = [
        t("publish.respondents", locale, audience=t(f"audience.{aud}", locale), count=count)
        for aud, count in sorted(record.respondents.items())
    ]
    joined = t("report.list_separator", locale).join(parts) or t("publish.nobody", locale)
    return t("publish.participation", locale, respondents=joined)


def record_text(
    name: str,
    record: AnnouncedTally,
    instrument: Instrument,
    signed: Mapping[str, Signature],
    request: Request,
    threshold: int,
) -> str:
    """The announced record: ballots, participation, the numbers when shown, signatures."""
    locale = request.locale
    lines = [f"<b>{views.esc(t('report.publish_title', locale, name=name))}</b>"]
    lines.append(
        t(
            "publish.recorded",
            locale,
            when=views.local_time(record.announced_at, request.zone),
            fingerprint=record.digest()[:FINGERPRINT],
        )
    )
    lines.append(_participation_line(record, locale))
    if record.rates is None:
        lines.append(t("report.small_group", locale, ballots=record.ballots, threshold=threshold))
    else:
        lines.append(t("report.ballots", locale, ballots=record.ballots))
        lines.append(
            t(
                "report.three_rates",
                locale,
                satisfaction=views.percent(record.rates.get("satisfaction")),
                awareness=views.percent(record.rates.get("awareness")),
                participation=views.percent(record.rates.get("participation")),
            )
        )
        lines.append(
            t("report.satisfaction_score", locale, score=views.score(record.satisfaction_score))
        )
        lines += _distribution_lines(record, instrument, locale)
    for role in ("secretary", "work_group_leader"):
        signature = signed.get(role)
        if signature is None:
            lines.append(t(f"report.unsigned.{role}", locale))
        else:
            when = views.local_time(signature.signed_at, request.zone)
            lines.append(
                t(f"report.signed.{role}", locale, name=views.esc(signature.name), when=when)
            )
    return "\n".join(lines)


def _publish_view(session: Session, request: Request, org_id: int) -> Answer:
    tally = round_tally(session, round_id=request.round_id, org_ids=[org_id], distribution=True)
    branch = tally.branch(org_id)
    if branch is None:
        return Answer.text(t("report.branch_not_in_round", request.locale))
    live = snapshot(branch, round_id=request.round_id, now=request.now)
    record = announce(session, tally=live, person_id=request.person_id, now=request.now)
    signed = signatures(session, round_id=request.round_id, org_ids=[org_id]).get(org_id, {})
    instrument = satisfaction_instrument(session, request.round_id)
    text = record_text(branch.name, record, instrument, signed, request, tally.threshold)
    buttons = _sign_buttons(request, org_id, signed)
    buttons += [b for b in [mini_app_button(org_id, request.locale)] if b is not None]
    return Answer.text(text, keyboard(buttons, per_row=1) if buttons else None)


def publish_answer(session: Session, update: Update, context: Context, query: str) -> Answer:
    """/publish [branch]: the tally to announce at the meeting, then the sign-off buttons."""
    request = request_of(session, update, context, "report.publish")
    org_id = single_branch(request) if not query else None
    if query or org_id is None:
        picked = pick_branch(
            session, update, request, query or "", "report.publish", BranchView.PUBLISH
        )
        if isinstance(picked, Answer):
            if not query:
                return choose_from(session, request, BranchView.PUBLISH)
            return picked
        org_id = picked
    return _publish_view(session, request, org_id)


def publish_tap(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """Tap a branch offered by /publish: its sheet to announce."""
    request = request_of(session, update, context, "report.publish")
    seen_branch(session, update, request, org_id, "report.publish")
    return _publish_view(session, request, org_id)


async def publish_command(update: Update, context: Context) -> None:
    """/publish [branch]."""
    query = " ".join(args_of(context))
    await run(update, context, lambda session: publish_answer(session, update, context, query))


def _confirm(session: Session, request: Request, org_id: int, capacity: Capacity) -> Answer:
    """Ask before signing, naming the record (its fingerprint) the signature will sign."""
    record = announced(session, round_id=request.round_id, org_id=org_id)
    if record is None:
        return _publish_view(session, request, org_id)
    fingerprint = record.digest()[:FINGERPRINT]
    text = t(
        f"publish.confirm.{_SIGNERS[capacity].value}",
        request.locale,
        name=views.esc(name_of(session, org_id)),
        ballots=record.ballots,
        fingerprint=fingerprint,
    )
    buttons = [
        button(t("publish.confirm_button", request.locale), SignTap(org_id, capacity, fingerprint)),
        button(t("publish.back_button", request.locale), BranchTap(BranchView.PUBLISH, org_id)),
    ]
    return Answer.text(text, keyboard(buttons, per_row=2))


def sign_tap(
    session: Session,
    update: Update,
    context: Context,
    org_id: int,
    capacity: Capacity,
    digest: str | None = None,
) -> Answer:
    """Tap a sign-off button: first a confirmation, then the signature of that record."""
    request = request_of(session, update, context, "sign_off")
    signer = _SIGNERS[capacity]
    roles = _roles(request, org_id)
    if signer.value not in roles:
        raise refuse(session, update, request.viewer, "sign_off", target=f"org:{org_id}")
    if digest is None:
        return _confirm(session, request, org_id, capacity)
    record = announced(session, round_id=request.round_id, org_id=org_id)
    if record is None or not record.digest().startswith(digest):
        answer = _publish_view(session, request, org_id)
        answer.texts.insert(0, t("publish.changed", request.locale))
        return answer
    try:
        sign_announcement(
            session,
            round_id=request.round_id,
            org_id=org_id,
            signer=signer,
            digest=record.digest(),
            person_id=request.person_id,
            roles=roles,
            now=request.now,
        )
    except GradingError as error:
        return grading_error(error, request.locale)
    answer = _publish_view(session, request, org_id)
    answer.toast = t("report.signed_toast", request.locale)
    return answer
