"""Pure formatting of /coverage: the table of every branch and one branch's people (issue 14).

No Telegram and no database. One gap everywhere (``surveys.grading.participation_gap``), the
branch's own people only (``BRANCH_AUDIENCES``: the township's inspectors and organizers are
not in a branch's list) and one line per person, with every survey they still owe.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.phone_tables import EMPTY, table
from bot.report_views import coverage_lines, esc, pre, short_name
from storage.participation import PersonOwing
from storage.tallies import BranchTally, RoundTally
from surveys.categories import BRANCH_AUDIENCES, Audience
from surveys.grading import participation_gap
from surveys.i18n import t


def gap(branch: BranchTally) -> int:
    """The branch's 差N人, as every other screen and message counts it."""
    return participation_gap(branch.coverage)


def coverage_table(tally: RoundTally, locale: str) -> str:
    """Participation of every branch, the furthest behind first: the gap, members and masses
    against their targets, then the name last (Chinese names drift in ``<pre>`` on phones)."""
    header = [
        t("report.col.gap", locale),
        t("report.col.members", locale),
        t("report.col.masses", locale),
        t("report.col.name", locale),
    ]
    rows = [
        [
            str(gap(branch)),
            _against(branch, Audience.MEMBERS),
            _against(branch, Audience.MASSES),
            short_name(branch.name),
        ]
        for branch in sorted(tally.branches, key=lambda b: (-gap(b), b.name))
    ]
    title = t("report.coverage_title", locale)
    return f"<b>{esc(title)}</b>\n{pre(table(header, rows, 'rrr'))}"


def _against(branch: BranchTally, audience: Audience) -> str:
    cov = branch.coverage.get(audience)
    return EMPTY if cov is None else f"{cov.respondents}/{cov.required}"


def branch_coverage_text(branch: BranchTally, owing: Sequence[PersonOwing], locale: str) -> str:
    """One branch: participation, the gap, then who still owes what, one line per person."""
    lines = [f"<b>{esc(branch.name)}</b>", *coverage_lines(branch, locale, BRANCH_AUDIENCES)]
    lines.append(t("report.gap", locale, gap=gap(branch)))
    reachable = [p for p in owing if not p.unreachable]
    unreachable = [p for p in owing if p.unreachable]
    if reachable:
        lines.append(t("report.waiting", locale, count=len(reachable)))
        lines += [esc(person_line(p, locale)) for p in reachable]
    if unreachable:
        lines.append(t("report.unreachable", locale, count=len(unreachable)))
        lines += [esc(person_line(p, locale)) for p in unreachable]
    if not owing:
        lines.append(t("report.everyone_answered", locale))
    return "\n".join(lines)


def person_line(person: PersonOwing, locale: str) -> str:
    """· 李书记：满意度测评、支部自评 — and why the bot cannot reach them, when it cannot."""
    owed = t("report.list_separator", locale).join(t(f"phase.{p}", locale) for p in person.phases)
    if person.blocked:
        why = t("report.blocked", locale)
    elif not person.registered:
        why = t("report.not_registered_person", locale)
    else:
        return t("secretary.person_line", locale, name=person.name, owed=owed)
    return t("secretary.person_line_why", locale, name=person.name, owed=owed, why=why)
