"""The secretary's 📋 微信群通知: polite plain text to paste into the branch's WeChat group.

Pure: plain values in, plain text out (no HTML, no bot commands, no internal notes; the
sender escapes it for Telegram, so what a long press copies is exactly this text). It says
which survey, by when (local time, as people write it: 12月5日（周六）18:00前), how many
have taken part against the target, with the one gap formula, who has not yet (names only:
taking part is not secret, an answer always is) and how to take part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from storage.participation import PersonOwing
from surveys.categories import Audience, Phase
from surveys.deadlines import deadline_words
from surveys.grading import PARTICIPATION_AUDIENCES, participation_gap
from surveys.i18n import t
from surveys.rules import Coverage

MAX_NAMES = 100  # a group notice, not a roster: beyond this, 等N人
NOTICE_PHASES = (Phase.SATISFACTION, Phase.SELF_EVALUATION)  # what a branch's own people owe


@dataclass(frozen=True)
class NoticeFacts:
    """What the notice says about one branch, read by the caller."""

    branch: str
    round_name: str
    coverage: dict[Audience, Coverage]
    deadlines: dict[str, datetime]  # by phase (a 补测 deadline in place of the round's)
    owing: Sequence[PersonOwing]
    bot_link: str
    now: datetime


def notice_text(facts: NoticeFacts, zone: tzinfo, locale: str) -> str:
    """The notice, or a short line saying there is nothing left to do."""
    lines = [
        t("secretary.notice.title", locale, branch=facts.branch),
        t("secretary.notice.greeting", locale),
        t("secretary.notice.intro", locale, round=facts.round_name),
    ]
    open_phases = [
        phase.value
        for phase in NOTICE_PHASES
        if phase.value in facts.deadlines and facts.deadlines[phase.value] > facts.now
    ]
    if not open_phases:
        return t("secretary.notice.closed", locale, branch=facts.branch)
    for phase in open_phases:
        lines += _phase_lines(facts, phase, zone, locale)
    lines += [
        t("secretary.notice.how", locale),
        facts.bot_link,
        t("secretary.notice.thanks", locale),
    ]
    return "\n".join(lines)


def _phase_lines(facts: NoticeFacts, phase: str, zone: tzinfo, locale: str) -> list[str]:
    deadline = deadline_words(facts.deadlines[phase], zone, locale)
    lines = [t("secretary.notice.phase", locale, phase=t(f"phase.{phase}", locale), by=deadline)]
    if phase == Phase.SATISFACTION.value:
        lines.append(_participation(facts.coverage, locale))
    names = [p.name for p in facts.owing if phase in p.phases]
    if names:
        lines.append(t(f"secretary.notice.missing.{phase}", locale, names=_names(names, locale)))
    return lines


def _participation(coverage: dict[Audience, Coverage], locale: str) -> str:
    """已参评X人，目标Y人，还差Z人 over the members and the masses (§6)."""
    counted = [coverage[a] for a in PARTICIPATION_AUDIENCES if a in coverage]
    gap = participation_gap(coverage)
    values = {
        "respondents": sum(c.respondents for c in counted),
        "required": sum(c.required for c in counted),
        "gap": gap,
    }
    key = "secretary.notice.participation" if gap else "secretary.notice.participation_met"
    return t(key, locale, **values)


def _names(names: Sequence[str], locale: str) -> str:
    shown = t("report.list_separator", locale).join(names[:MAX_NAMES])
    if len(names) > MAX_NAMES:
        shown += t("secretary.notice.more", locale, count=len(names))
    return shown
