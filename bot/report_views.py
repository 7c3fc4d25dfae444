"""Pure formatting of the reports: tallies, coverage, rankings, grades, the announcement, ledgers.

No Telegram and no database: every function takes plain values and a locale and returns
text (HTML for Telegram's ``parse_mode="HTML"``; tables in ``<pre>`` so columns line up).
Tables are meant for a phone: short names and at most about 32 characters a line.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from decimal import Decimal

from bot.phone_tables import EMPTY, pad, table, width
from storage.models import RectificationItem
from storage.tallies import BranchTally, RoundTally
from surveys.categories import Audience
from surveys.grading import PoolProposal, Status, display_score
from surveys.i18n import t
from surveys.instruments import Instrument, Item
from surveys.rules import Grade
from surveys.text import short_number

DASH = "—"
NAME_WIDTH = 10  # display columns (five Chinese characters)
_SUFFIXES = ("党总支部", "党总支", "党支部", "党委", "支部", "委员会")
COVERAGE_AUDIENCES = (Audience.MEMBERS, Audience.MASSES, Audience.COMMITTEE, Audience.INSPECTORS)


# --- Small pieces ---------------------------------------------------------------------------


def esc(text: object) -> str:
    """Text made safe for Telegram HTML."""
    return html.escape(str(text), quote=False)


def score(value: Decimal | None) -> str:
    """A score half up to two places, without trailing zero decimals (88.50 → 88.5).

    docs/rules.md §5.1: rounded for display only; issue 14: ".00" on every line is noise.
    """
    return DASH if value is None else short_number(display_score(value))


def percent(value: Decimal | None) -> str:
    """A share as a percentage with one decimal, or a dash."""
    return DASH if value is None else f"{value * 100:.1f}%"


def grade_name(grade: Grade | str | None, locale: str) -> str:
    """The grade's display name, or a dash."""
    return DASH if grade is None else t(f"grade.{Grade(grade).value}", locale)


def short_name(name: str, columns: int = NAME_WIDTH) -> str:
    """A branch name without its 党支部 suffix, cut to fit a phone table."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return name if width(name) <= columns else pad(name, columns - 1).rstrip() + "…"


def competition_ranks(values: Sequence[Decimal | None]) -> list[int | None]:
    """Ranks 1, 2, 2, 4 for values sorted best first; None has no rank."""
    ranks: list[int | None] = []
    for index, value in enumerate(values):
        if value is None:
            ranks.append(None)
        elif index and value == values[index - 1]:
            ranks.append(ranks[-1])
        else:
            ranks.append(index + 1)
    return ranks


def with_unscored(lines: list[str], listed: int, total: int, locale: str) -> list[str]:
    """Table lines and one line for the branches not listed (其余14个暂无得分), if any."""
    if listed >= total:
        return lines
    key = "table.unscored_rest" if listed else "table.unscored_all"
    return [*lines, t(key, locale, count=total - listed)]


def pre(lines: Sequence[str]) -> str:
    """Table lines as one monospace block (HTML)."""
    return f"<pre>{esc(chr(10).join(lines))}</pre>"


def scored_or_decided(branch: BranchTally) -> bool:
    """A branch that gets its own table row: it has a score, or a decided grade."""
    decided = branch.decision is not None and branch.decision.final_grade is not None
    return branch.grading_score is not None or decided


def local_time(when: datetime, zone: tzinfo) -> str:
    """A UTC time shown in the local zone, to the minute."""
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M")


# --- /tally ---------------------------------------------------------------------------------


def coverage_lines(
    branch: BranchTally, locale: str, audiences: Sequence[Audience] = COVERAGE_AUDIENCES
) -> list[str]:
    """Each audience against its target (/tally shows every one; /coverage the branch's own)."""
    lines = []
    for audience in audiences:
        cov = branch.coverage.get(audience)
        if cov is None:
            continue
        lines.append(
            t(
                "report.coverage_line",
                locale,
                audience=t(f"audience.{audience.value}", locale),
                respondents=cov.respondents,
                required=cov.required,
                denominator=cov.denominator,
                status=t(f"coverage_status.{cov.status.value}", locale),
            )
        )
    if branch.members_only:
        lines.append(t("report.members_only_note", locale))
    return lines


def _satisfaction_lines(branch: BranchTally, threshold: int, locale: str) -> list[str]:
    if branch.small_group or branch.rates is None:
        return [t("report.small_group", locale, ballots=branch.ballots, threshold=threshold)]
    return [
        t("report.ballots", locale, ballots=branch.ballots),
        t(
            "report.three_rates",
            locale,
            satisfaction=percent(branch.rates.satisfaction),
            awareness=percent(branch.rates.awareness),
            participation=percent(branch.rates.participation),
        ),
        t("report.satisfaction_score", locale, score=score(branch.satisfaction_score)),
    ]


def _by_item_lines(instrument: Instrument | None, values: dict[str, Decimal], locale: str) -> str:
    """'名称 17.50、…' for per-indicator or per-dimension means."""
    if not values:
        return ""
    parts = []
    if instrument is not None:
        for section in instrument.sections:
            for key, label in [(section.id, section.title.get(locale))] + [
                (item.id, item.text.get(locale)) for item in section.items
            ]:
                if key in values:
                    parts.append(f"{label} {score(values[key])}")
    else:
        parts = [f"{key} {score(value)}" for key, value in values.items()]
    return t("report.list_separator", locale).join(parts)


def _composite_line(branch: BranchTally, locale: str) -> str:
    mix = branch.composite
    if mix.score is None:
        return t("report.composite_none", locale)
    if not mix.missing:
        return t("report.composite", locale, score=score(mix.score))
    missing = t("report.list_separator", locale).join(
        t(f"report.part.{part}", locale) for part in mix.missing
    )
    return t("report.composite_renormalized", locale, score=score(mix.score), missing=missing)


def _needs(branch: BranchTally, locale: str) -> str:
    """How many respondents are still needed per audience, e.g. 党员 3 人、群众 2 人."""
    status = branch.status
    short = status.shortfalls if status is not None else {}
    return t("report.list_separator", locale).join(
        t("grading.needs", locale, audience=t(f"audience.{a.value}", locale), count=n)
        for a, n in short.items()
    )


def status_line(branch: BranchTally, locale: str) -> str | None:
    """What stops a branch from being graded (docs/rules.md §6.3), or None when complete."""
    status = branch.status
    if status is None or status.status is Status.COMPLETE:
        return t("grading.status.waived", locale) if status and status.waived else None
    if status.status is Status.PARTICIPATION_NOT_MET:
        return t("grading.status.participation_not_met", locale, needs=_needs(branch, locale))
    missing = t("report.list_separator", locale).join(
        t(f"grading.part.{part.value}", locale) for part in status.missing
    )
    pieces = []
    if missing:
        pieces.append(t("grading.status.missing", locale, missing=missing))
    if status.shortfalls:
        pieces.append(t("grading.status.short", locale, needs=_needs(branch, locale)))
    return t("grading.status.incomplete", locale, detail="；".join(pieces))


def grade_cell(branch: BranchTally, locale: str) -> str:
    """The grade column: the decision, the proposal (暂定 while provisional), or the status."""
    decision = branch.decision
    if decision is not None and decision.final_grade is not None:
        return grade_name(decision.final_grade, locale)
    if branch.participation_not_met:
        return t("grading.cell.participation_not_met", locale)
    if branch.proposal is None:
        return DASH
    mark = t("grading.cell.provisional", locale) if branch.provisional else ""
    return grade_name(branch.proposal.grade, locale) + mark


def _proposal_line(branch: BranchTally, locale: str) -> str:
    proposal = branch.proposal
    if proposal is None and branch.status is not None and branch.status.status is Status.COMPLETE:
        return t("grading.awaiting_decision", locale)  # proposals are the committee's (issue 14)
    if proposal is None:
        return status_line(branch, locale) or t("report.no_proposal", locale)
    line = t(
        "report.proposal",
        locale,
        grade=grade_name(proposal.grade, locale),
        rank=proposal.rank,
        reason=t(f"proposal_reason.{proposal.reason.value}", locale),
    )
    if branch.provisional:
        line += " " + t("grading.provisional_flag", locale)
    if proposal.tie_at_edge:
        line += " " + t("report.tie_flag", locale)
    return line


def pool_lines(tally: RoundTally, locale: str) -> list[str]:
    """Per pool: its basis, and whether the quotas apply or it is provisional (§5.2, §5.5)."""
    return [_pool_line(pool, locale) for pool in tally.pools.values()]


def _pool_line(pool: PoolProposal, locale: str) -> str:
    state = (
        t(
            "grading.pool.complete",
            locale,
            graded=pool.graded,
            max_good=pool.max_good,
            min_poor=pool.min_poor,
        )
        if pool.complete
        else t("grading.pool.provisional", locale, graded=pool.graded)
    )
    return t(
        "grading.pool_line",
        locale,
        pool=t(f"grading.pool.{pool.pool.value}", locale),
        basis=t(f"grading.basis.{pool.basis.value}", locale),
        state=state,
    )


def branch_tally_text(
    branch: BranchTally,
    tally: RoundTally,
    locale: str,
    *,
    self_instrument: Instrument | None = None,
    inspection_instrument: Instrument | None = None,
) -> str:
    """The full live tally of one branch (HTML)."""
    lines = [f"<b>{esc(branch.name)}</b>", t("report.section.participation", locale)]
    lines += coverage_lines(branch, locale)
    lines.append(t("report.section.satisfaction", locale))
    lines += _satisfaction_lines(branch, tally.threshold, locale)
    lines.append(t("report.section.scores", locale))
    lines.append(
        t(
            "report.self_evaluation",
            locale,
            score=score(branch.self_evaluation),
            count=branch.self_evaluators,
        )
    )
    detail = _by_item_lines(self_instrument, branch.self_evaluation_by_item, locale)
    if detail:
        lines.append("  " + esc(detail))
    lines.append(
        t("report.inspection", locale, score=score(branch.inspection), count=branch.inspectors)
    )
    detail = _by_item_lines(inspection_instrument, branch.inspection_by_section, locale)
    if detail:
        lines.append("  " + esc(detail))
    if branch.superior is not None:
        lines.append(
            t(
                "report.superior",
                locale,
                score=score(branch.superior),
                count=branch.superior_scorers,
            )
        )
    if branch.small_group:  # no composite number: it would give the hidden score back (§7.2)
        lines.append(t("grading.hidden_number", locale, threshold=tally.threshold))
    else:
        lines.append(_composite_line(branch, locale))
    if branch.vetoes:
        lines.append(t("report.vetoed", locale, conditions=_veto_list(branch.vetoes, locale)))
    lines.append(_proposal_line(branch, locale))
    if branch.proposal is not None and branch.status is not None and branch.status.waived:
        lines.append(t("grading.status.waived", locale))
    if branch.decision is not None and branch.decision.final_grade is not None:
        lines.append(
            t("report.decided", locale, grade=grade_name(branch.decision.final_grade, locale))
        )
    return "\n".join(lines)


def _veto_list(codes: Sequence[str], locale: str) -> str:
    return t("report.list_separator", locale).join(t(f"veto.{code}", locale) for code in codes)


def _rank(branch: BranchTally) -> str:
    return str(branch.proposal.rank) if branch.proposal is not None else EMPTY


def township_table(tally: RoundTally, locale: str, *, title: str) -> str:
    """Scored branches pool by pool in rank order, numbers first, name last; the rest in a line."""
    header = [
        t("table.col.rank", locale),
        t("report.col.ballots", locale),
        t("report.col.score", locale),
        t("report.col.grade", locale),
        t("report.col.name", locale),
    ]
    listed = [branch for branch in tally.branches if scored_or_decided(branch)]
    rows = [
        [
            _rank(branch),
            str(branch.ballots),
            score(branch.grading_score),
            grade_cell(branch, locale),
            short_name(branch.name),
        ]
        for branch in listed
    ]
    lines = with_unscored(table(header, rows, "lrrl"), len(listed), len(tally.branches), locale)
    quota = "\n".join(esc(line) for line in pool_lines(tally, locale))
    return f"<b>{esc(title)}</b>\n{pre(lines)}\n{quota}"


# --- /rank ----------------------------------------------------------------------------------


def ranking_text(tally: RoundTally, locale: str) -> str:
    """Each pool ranked on its one named basis (§5.5), then the ranking by inspection score."""
    parts = [_pool_ranking(tally, pool, locale) for pool in tally.pools.values()]
    inspected = sorted(
        (b for b in tally.branches if b.inspection is not None),
        key=lambda b: (-(b.inspection or 0), b.name),
    )
    values = [b.inspection for b in inspected]
    rows = [
        [str(rank), score(value), short_name(branch.name)]
        for branch, value, rank in zip(inspected, values, competition_ranks(values), strict=True)
    ]
    header = [t(key, locale) for key in ("table.col.rank", "report.col.score", "report.col.name")]
    lines = with_unscored(table(header, rows, "lr"), len(rows), len(tally.branches), locale)
    parts.append(f"<b>{esc(t('report.rank_by_inspection', locale))}</b>\n{pre(lines)}")
    return "\n".join(parts)


def _pool_ranking(tally: RoundTally, pool: PoolProposal, locale: str) -> str:
    """A pool's scored branches by the rank of its proposal, one basis, named; then the rest."""
    members = [b for b in tally.branches if b.pool is pool.pool]
    listed = [b for b in members if scored_or_decided(b)]
    rows = [
        [_rank(b), score(b.grading_score), grade_cell(b, locale), short_name(b.name)]
        for b in listed
    ]
    header = [
        t(key, locale)
        for key in ("table.col.rank", "report.col.score", "report.col.grade", "report.col.name")
    ]
    lines = with_unscored(table(header, rows, "lrl"), len(listed), len(members), locale)
    return f"<b>{esc(_pool_line(pool, locale))}</b>\n{pre(lines)}"


# --- /grades --------------------------------------------------------------------------------


def grades_header(tally: RoundTally, locale: str) -> str:
    """The thresholds and the quotas the proposal applied."""
    return "\n".join(
        [
            f"<b>{esc(t('report.grades_title', locale))}</b>",
            t("report.thresholds", locale),
            *(esc(line) for line in pool_lines(tally, locale)),
        ]
    )


def grade_line(branch: BranchTally, locale: str) -> str:
    """One branch's proposal, its flags and the decision so far."""
    proposal = branch.proposal
    head = f"<b>{esc(branch.name)}</b> {score(branch.grading_score)}"
    if proposal is None:
        return head + "\n" + _proposal_line(branch, locale)
    lines = [head, _proposal_line(branch, locale)]
    if proposal.by_threshold is not proposal.grade:
        lines.append(
            t("report.by_threshold", locale, grade=grade_name(proposal.by_threshold, locale))
        )
    if branch.vetoes:
        lines.append(t("report.vetoed", locale, conditions=_veto_list(branch.vetoes, locale)))
    decision = branch.decision
    if decision is not None and decision.final_grade is not None:
        key = "report.locked" if decision.locked else "report.decided"
        lines.append(t(key, locale, grade=grade_name(decision.final_grade, locale)))
        if decision.reason:
            lines.append(t("report.decision_reason", locale, reason=esc(decision.reason)))
    return "\n".join(lines)


# --- /publish -------------------------------------------------------------------------------


def item_label(item: Item, locale: str) -> str:
    """A question named on the meeting screen: its short label (总体评价), never a bare Q6."""
    for text in (item.short_label, item.description):
        if text is not None and text.get(locale):
            return text.get(locale)
    return item.text.get(locale)


# --- /rectify -------------------------------------------------------------------------------


def ledger_text(
    name: str, items: Sequence[RectificationItem], today: date, zone: tzinfo, locale: str
) -> str:
    """A branch's rectification ledger: open lines with their deadline, closed ones with 销号."""
    lines = [f"<b>{esc(t('report.ledger_title', locale, name=name))}</b>"]
    if not items:
        lines.append(t("report.ledger_empty", locale))
    for index, item in enumerate(items, start=1):
        if item.closed_at is not None:
            state = t("report.ledger_closed", locale, when=local_time(item.closed_at, zone))
        elif item.due_on < today:
            state = t("report.ledger_overdue", locale)
        else:
            state = t("report.ledger_open", locale)
        lines.append(
            t(
                "report.ledger_line",
                locale,
                number=index,
                matter=esc(item.matter),
                measures=esc(item.measures),
                due=item.due_on.isoformat(),
                responsible=esc(item.responsible),
                state=state,
            )
        )
    return "\n".join(lines)
