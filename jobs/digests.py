"""The texts the jobs send: deadline reminders, interim results and target-reached notes.

Texts are rendered once, when a message is enqueued, in the recipient's language, with
times in the township's zone. Who has *responded* is not secret (secretaries chase
non-respondents); what anyone answered never appears here, and a branch with fewer than
``small_group_threshold`` satisfaction ballots shows participation only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from storage.participation import BranchCoverage, PersonStatus
from surveys.branch_buttons import BranchButton, encode_branch_button
from surveys.categories import BRANCH_AUDIENCES, Audience, Phase
from surveys.grading import PARTICIPATION_AUDIENCES, participation_gap
from surveys.i18n import t
from surveys.rules import Coverage, CoverageStatus
from surveys.scoring import SatisfactionSummary

# The audiences a branch secretary chases (参与面); inspectors and organizers are the
# township's own business and appear only in the organizers' table.
SECRETARY_AUDIENCES: tuple[Audience, ...] = BRANCH_AUDIENCES

PHASE_AUDIENCES: Mapping[Phase, tuple[Audience, ...]] = {
    Phase.SATISFACTION: (Audience.MEMBERS, Audience.MASSES),
    Phase.SELF_EVALUATION: (Audience.COMMITTEE,),
    Phase.INSPECTION: (Audience.INSPECTORS,),
    Phase.SUPERIOR_SCORING: (Audience.ORGANIZERS,),
}

MAX_NAMES = 120
MAX_MESSAGE_CHARS = 3500  # below Telegram's 4096, leaving room for a header


def local_time(moment: datetime, zone: tzinfo, locale: str) -> str:
    """A moment as the catalog writes date and time, in local time."""
    return t("common.datetime", locale, value=moment.astimezone(zone))


def percent(rate: Decimal | None, locale: str) -> str:
    """A share 0–1 as a percentage with at most one decimal, or a dash when unknown."""
    if rate is None:
        return t("jobs.rate_unknown", locale)
    value = (rate * 100).quantize(Decimal("0.1")).normalize()
    return t("jobs.percent", locale, value=format(value, "f"))


def phase_names(phases: Iterable[Phase | str], locale: str) -> str:
    """Phase display names joined the way the language lists them."""
    return t("jobs.list_separator", locale).join(t(f"phase.{p}", locale) for p in phases)


def secretary_audiences(phases: Iterable[Phase | str]) -> tuple[Audience, ...]:
    """The audiences of these phases that a secretary chases, in a fixed order."""
    wanted = {a for phase in phases for a in PHASE_AUDIENCES[Phase(phase)]}
    return tuple(a for a in SECRETARY_AUDIENCES if a in wanted)


# --- Participation lines ---------------------------------------------------------------------


def coverage_line(coverage: Coverage, locale: str) -> str:
    """One audience's participation against its target, in one line."""
    values: dict[str, Any] = {
        "audience": t(f"audience.{coverage.audience}", locale),
        "respondents": coverage.respondents,
        "denominator": coverage.denominator,
        "rate": percent(coverage.rate, locale),
        "required": coverage.required,
        "needed": coverage.needed,
    }
    key = {
        CoverageStatus.MET: "jobs.coverage.met",
        CoverageStatus.BEHIND: "jobs.coverage.behind",
        CoverageStatus.NO_DATA: "jobs.coverage.no_data",
    }[coverage.status]
    return t(key, locale, **values)


def coverage_lines(branch: BranchCoverage, audiences: Sequence[Audience], locale: str) -> list[str]:
    """Lines for the given audiences the branch has a target for."""
    return [coverage_line(branch.coverage[a], locale) for a in audiences if a in branch.coverage]


def behind(branch: BranchCoverage, audiences: Iterable[Audience]) -> bool:
    """Whether any of these audiences is still short of its target."""
    return any(
        branch.coverage[a].status is CoverageStatus.BEHIND
        for a in audiences
        if a in branch.coverage
    )


def target_reached(
    branch: BranchCoverage, audiences: Iterable[Audience] = SECRETARY_AUDIENCES
) -> bool:
    """Every audience with a roster count has met its target (and there is at least one)."""
    judged = [
        branch.coverage[a]
        for a in audiences
        if a in branch.coverage and branch.coverage[a].status is not CoverageStatus.NO_DATA
    ]
    return bool(judged) and all(c.status is CoverageStatus.MET for c in judged)


def person_label(person: PersonStatus, locale: str) -> str:
    """A non-respondent's name, marked when the bot cannot reach them."""
    if not person.registered:
        return t("jobs.person.unregistered", locale, name=person.name)
    if person.blocked:
        return t("jobs.person.blocked", locale, name=person.name)
    return person.name


def missing_lines(missing: Sequence[PersonStatus], locale: str) -> list[str]:
    """The names of people who still owe a response, one person once, capped."""
    if not missing:
        return [t("jobs.missing.none", locale)]
    seen: dict[int, PersonStatus] = {}
    for person in missing:
        seen.setdefault(person.person_id, person)
    # By name in Python, not the database's collation: both backends give the same list.
    people = sorted(seen.values(), key=lambda p: (p.name, p.person_id))
    names = [person_label(p, locale) for p in people[:MAX_NAMES]]
    line = t("jobs.list_separator", locale).join(names)
    if len(people) > MAX_NAMES:
        line += t("jobs.missing.more", locale, count=len(people))
    return [t("jobs.missing.header", locale, count=len(people)), line]


# --- Messages ---------------------------------------------------------------------------------


def secretary_reminder_text(
    *,
    branch: BranchCoverage,
    phases: Sequence[Phase | str],
    audiences: Sequence[Audience],
    missing: Sequence[PersonStatus],
    deadline: datetime,
    now: datetime,
    zone: tzinfo,
    locale: str,
) -> str:
    """Before a deadline: the branch's participation, how many more, who has not answered."""
    header = t(
        "jobs.secretary_reminder.header",
        locale,
        branch=branch.name,
        phases=phase_names(phases, locale),
        deadline=local_time(deadline, zone, locale),
        left=time_left(deadline - now, locale),
    )
    lines = [header, *coverage_lines(branch, audiences, locale)]
    gap = participation_gap(branch.coverage)  # the one gap, as /coverage shows it (issue 14)
    if gap and any(a in PARTICIPATION_AUDIENCES for a in audiences):
        lines.append(t("jobs.secretary_reminder.needed", locale, needed=gap))
    lines += missing_lines(missing, locale)
    return "\n".join(lines)


def secretary_keyboard(org_id: int, locale: str) -> dict[str, Any]:
    """Under a secretary's reminder: 📋 the WeChat notice and 🔗 the invitation links."""
    return resume_keyboard(
        [
            (
                t("secretary.button.notice", locale),
                encode_branch_button(BranchButton.NOTICE, org_id),
            ),
            (
                t("secretary.button.invites", locale),
                encode_branch_button(BranchButton.INVITES, org_id),
            ),
        ]
    )


DAYS_FROM_HOURS = 48
"""Beyond two days a deadline is counted in days (还有约10天, not 还有约232小时)."""


def time_left(left: timedelta, locale: str) -> str:
    """How long until a deadline, as people say it: days beyond 48 hours, else hours."""
    hours = left.total_seconds() / 3600
    if hours > DAYS_FROM_HOURS:
        return t("jobs.left.days", locale, count=round(hours / 24))
    if hours >= 2:  # "about 1 hours" is not English; below two hours, say so
        return t("jobs.left.hours", locale, count=round(hours))
    return t("jobs.left.hour", locale)


def personal_reminder_text(
    *,
    name: str,
    phases: Sequence[Phase | str],
    count: int,
    deadline: datetime,
    zone: tzinfo,
    locale: str,
) -> str:
    """Before a deadline: a short personal nudge (the buttons resume each survey)."""
    return t(
        "jobs.personal_reminder",
        locale,
        name=name,
        phases=phase_names(phases, locale),
        deadline=local_time(deadline, zone, locale),
        count=count,
    )


def resume_keyboard(buttons: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """An inline keyboard as Bot API JSON, one (label, callback data) button per row."""
    return {
        "inline_keyboard": [[{"text": label, "callback_data": data}] for label, data in buttons]
    }


def satisfaction_line(
    summary: SatisfactionSummary | None, ballots: int, threshold: int, locale: str
) -> str:
    """The three rates so far, or only the ballot count while the group is too small."""
    if summary is None or ballots < threshold:
        return t("jobs.interim.too_few", locale, ballots=ballots, threshold=threshold)
    return t(
        "jobs.interim.rates",
        locale,
        ballots=ballots,
        satisfaction=percent(summary.satisfaction_rate, locale),
        awareness=percent(summary.awareness_rate, locale),
        participation=percent(summary.participation_rate, locale),
    )


def secretary_interim_text(
    *,
    branch: BranchCoverage,
    summary: SatisfactionSummary | None,
    ballots: int,
    threshold: int,
    at: datetime,
    zone: tzinfo,
    locale: str,
) -> str:
    """The daily interim result of one branch for its secretary."""
    header = t("jobs.interim.header", locale, branch=branch.name, at=local_time(at, zone, locale))
    lines = [header, *coverage_lines(branch, SECRETARY_AUDIENCES, locale)]
    lines.append(satisfaction_line(summary, ballots, threshold, locale))
    return "\n".join(lines)


def furthest_behind_first(branches: Iterable[BranchCoverage]) -> list[BranchCoverage]:
    """Branches ordered by how many respondents they still need, most first, then by name."""
    return sorted(branches, key=lambda b: (-b.behind, b.name, b.org_id))


def organizer_row(rank: int, branch: BranchCoverage, unreachable: int, locale: str) -> str:
    """One branch in the organizers' table."""
    details = t("jobs.list_separator", locale).join(
        t(
            "jobs.organizer.detail",
            locale,
            audience=t(f"audience.{c.audience}", locale),
            respondents=c.respondents,
            denominator=c.denominator,
        )
        for c in branch.coverage.values()
        if c.denominator and c.audience in PARTICIPATION_AUDIENCES  # what the gap counts
    )
    key = "jobs.organizer.row_behind" if branch.behind else "jobs.organizer.row_met"
    row = t(key, locale, rank=rank, branch=branch.name, needed=branch.behind, details=details)
    if unreachable:
        row += t("jobs.organizer.unreachable", locale, count=unreachable)
    return row


def organizer_digest_texts(
    *,
    branches: Iterable[BranchCoverage],
    unreachable: Mapping[int, int],
    at: datetime,
    zone: tzinfo,
    locale: str,
) -> list[str]:
    """The organizers' table of every branch in scope, furthest behind first, in chunks."""
    ordered = furthest_behind_first(branches)
    header = t("jobs.organizer.header", locale, at=local_time(at, zone, locale), count=len(ordered))
    rows = [
        organizer_row(rank, branch, unreachable.get(branch.org_id, 0), locale)
        for rank, branch in enumerate(ordered, start=1)
    ]
    return chunk_lines([header, *rows], MAX_MESSAGE_CHARS)


def target_reached_text(*, branch: BranchCoverage, locale: str) -> str:
    """The branch has reached its participation targets."""
    lines = [t("jobs.target_reached", locale, branch=branch.name)]
    lines += coverage_lines(branch, SECRETARY_AUDIENCES, locale)
    return "\n".join(lines)


def chunk_lines(lines: Sequence[str], limit: int) -> list[str]:
    """Join lines into as few texts of at most ``limit`` characters as possible."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > limit:
            chunks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        chunks.append("\n".join(current))
    return chunks
