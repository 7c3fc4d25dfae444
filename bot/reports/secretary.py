"""A secretary's two buttons about their branch (issue 14): the WeChat notice and the
invitation links, with QR codes, of the branch's unregistered people.

Offered on /remind, under the branch's /coverage and /tally screens and in the reminder the
jobs send a secretary. A secretary may use them for their own branch only, an organizer for
any branch in scope; every other tap is refused politely and audited. Issuing links mints
fresh single-use tokens (only hashes are stored) and is audited in the same transaction.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from telegram import InlineKeyboardButton, Update

from bot.common import Context, audit, services
from bot.invitations import InviteRow, qr_png, write_invitations_xlsx
from bot.report_callbacks import BranchTap, BranchView
from bot.report_views import esc, short_name
from bot.reports.common import Answer, Request, button, name_of, refuse, request_of
from bot.wechat_notice import NoticeFacts, notice_text
from storage.branch_invites import BranchInvite, issue_branch_invitations
from storage.db import Session
from storage.participation import owing_people, round_coverage
from storage.remedies import reruns
from storage.reminders import round_phases
from surveys.categories import Phase
from surveys.i18n import t

NOTICE_ACTION = "secretary.notice"
INVITES_ACTION = "secretary.invites"
MAX_QR_PHOTOS = 10  # more than this: one spreadsheet with every code, not a flood of photos


def branch_buttons(request: Request, org_id: int) -> list[InlineKeyboardButton]:
    """The two buttons for a branch the asker chases (secretary of it, or its organizer)."""
    if not request.scope.keeps_ledger_of(org_id):
        return []
    return [
        button(t("secretary.button.notice", request.locale), BranchTap(BranchView.NOTICE, org_id)),
        button(
            t("secretary.button.invites", request.locale), BranchTap(BranchView.INVITES, org_id)
        ),
    ]


def _chased_branch(
    session: Session, update: Update, context: Context, org_id: int, action: str
) -> Request:
    """The request, if the asker is the branch's secretary or organizer; else Refused."""
    request = request_of(session, update, context, action)
    if not request.scope.keeps_ledger_of(org_id):
        raise refuse(session, update, request.viewer, action, target=f"org:{org_id}")
    return request


def bot_link(context: Context) -> str:
    """https://t.me/<bot>: where people open the bot (a link, not a command)."""
    username = services(context).settings.bot_username or context.bot.username
    return f"https://t.me/{str(username).lstrip('@')}"


# --- 📋 生成微信群通知 ---------------------------------------------------------------------


def notice_tap(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """The notice as plain text, after a line saying what to do with it."""
    request = _chased_branch(session, update, context, org_id, NOTICE_ACTION)
    branch = round_coverage(session, round_id=request.round_id, org_ids=[org_id]).get(org_id)
    if branch is None:
        return Answer.text(t("report.branch_not_in_round", request.locale))
    deadlines = {
        p.phase: p.deadline for p in round_phases(session=session, round_id=request.round_id)
    }
    rerun = reruns(session, round_id=request.round_id, org_ids=[org_id]).get(org_id)
    if rerun is not None:  # 补测: the branch's own satisfaction deadline
        deadlines[Phase.SATISFACTION.value] = rerun.deadline
    facts = NoticeFacts(
        branch=branch.name,
        round_name=request.round_name,
        coverage=branch.coverage,
        deadlines=deadlines,
        owing=owing_people(session, round_id=request.round_id, org_id=org_id),
        bot_link=bot_link(context),
        now=request.now,
    )
    notice = notice_text(facts, request.zone, request.locale)
    return Answer(texts=[t("secretary.notice.copy_hint", request.locale), esc(notice)])


# --- 🔗 未登记人员邀请链接 -------------------------------------------------------------------


def invites_tap(session: Session, update: Update, context: Context, org_id: int) -> Answer:
    """New links for the branch's unregistered people: a list, then a QR code each."""
    request = _chased_branch(session, update, context, org_id, INVITES_ACTION)
    days = services(context).settings.invitation_days
    invites = issue_branch_invitations(
        session=session, org_id=org_id, round_id=request.round_id, now=request.now, days=days
    )
    audit(
        session,
        actor=request.actor,
        action=INVITES_ACTION,
        target=f"org:{org_id}",
        detail={"issued": len(invites)},
        at=request.now,
    )
    name = name_of(session, org_id)
    if not invites:
        return Answer.text(t("secretary.invites.none", request.locale, branch=esc(name)))
    return _invites_answer(request, name, invites, days, bot_link(context))


def _invites_answer(
    request: Request, branch: str, invites: list[BranchInvite], days: int, link: str
) -> Answer:
    locale = request.locale
    links = [f"{link}?start={invite.token}" for invite in invites]
    head = t("secretary.invites.head", locale, branch=esc(branch), count=len(invites), days=days)
    lines = [head]
    lines += [
        esc(t("secretary.invites.line", locale, name=invite.name, link=url))
        for invite, url in zip(invites, links, strict=True)
    ]
    answer = Answer(texts=["\n".join(lines)])
    if len(invites) <= MAX_QR_PHOTOS:  # a photo each: forwarded to WeChat from any phone
        answer.photos = [qr_png(url) for url in links]
        answer.captions = [
            t("secretary.invites.caption", locale, name=invite.name, branch=branch)
            for invite in invites
        ]
        return answer
    rows = [
        InviteRow(name=i.name, phone=i.phone, org=branch, roles="", link=url)
        for i, url in zip(invites, links, strict=True)
    ]
    answer.document = (_sheet(rows, locale), f"{short_name(branch, 20)}_invitations.xlsx")
    return answer


def _sheet(rows: list[InviteRow], locale: str) -> bytes:
    """The invitation sheet of ``ceping invite`` (QR codes embedded) as bytes."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "invitations.xlsx"
        write_invitations_xlsx(path, rows, locale)
        return path.read_bytes()
