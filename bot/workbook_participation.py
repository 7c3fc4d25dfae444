"""The workbook's 参与情况 and 未参评名单 sheets (issue 14): who has taken part, who not yet.

参与情况 has one row per branch and audience against its target (docs/rules.md §6);
未参评名单 one row per person who still owes a response, with what they owe and whether the
bot can reach them. Participation is public (docs/anonymity.md: "/coverage shows who has
not responded"), so names are listed; what anyone answered never is. Both sheets have an
autofilter, so a secretary can filter their branch or everyone 未登记.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from openpyxl import Workbook

from bot.sheets import PERCENT, Column, Row, write_sheet
from storage.db import Session
from storage.instruments import pinned_instrument
from storage.reports import Owed, owed_responses
from storage.tallies import BranchTally, RoundTally
from surveys.categories import Audience
from surveys.i18n import t


def _by_name(tally: RoundTally) -> list[BranchTally]:
    return sorted(tally.branches, key=lambda branch: (branch.name, branch.org_id))


def participation_sheet(workbook: Workbook, tally: RoundTally, locale: str) -> None:
    """参与情况: per branch and audience, the roster count, the target, who took part, the gap.

    The gap per audience is ``Coverage.needed`` (surveys.rules.coverage_for), the figure each
    audience line of /coverage and the reminders shows; a branch's 差N人 is
    ``surveys.grading.participation_gap``, the sum of its members' and masses' rows here.
    """
    h = _header(locale)
    columns = [
        Column(t("export.col.org", locale)),
        Column(h("audience")),
        Column(h("roster")),
        Column(h("required")),
        Column(h("respondents")),
        Column(h("coverage_rate"), PERCENT),
        Column(h("needed")),
        Column(h("coverage_status")),
    ]
    rows: list[Row] = []
    for branch in _by_name(tally):
        for audience in Audience:  # the enum's order: members, masses, committee, …
            cov = branch.coverage.get(audience)
            if cov is None:
                continue
            rows.append(
                [
                    branch.name,
                    t(f"audience.{audience.value}", locale),
                    cov.denominator,
                    cov.required,
                    cov.respondents,
                    cov.rate,
                    cov.needed,
                    t(f"coverage_status.{cov.status.value}", locale),
                ]
            )
    title = t("export.sheet.participation", locale)
    write_sheet(workbook, title, columns, rows, frozen_columns=2, autofilter=True)


def waiting_sheet(session: Session, workbook: Workbook, tally: RoundTally, locale: str) -> None:
    """未参评名单: one row per person and branch still owing a response; names, never choices."""
    h = _header(locale)
    columns = [
        Column(t("export.col.org", locale)),
        Column(h("person")),
        Column(h("audience")),
        Column(h("owes")),
        Column(h("registration")),
    ]
    names = {branch.org_id: branch.name for branch in tally.branches}
    owed = owed_responses(session=session, round_id=tally.round_id, org_ids=list(names))
    titles = _titles(session, tally.round_id, {line.instrument_id for line in owed}, locale)
    people: dict[tuple[int, int], list[Owed]] = defaultdict(list)
    for line in owed:
        people[(line.org_id, line.person_id)].append(line)
    rows: list[Row] = []
    for (org_id, _), lines in sorted(
        people.items(), key=lambda item: (names[item[0][0]], item[1][0].name, item[0])
    ):
        rows.append(
            [
                names[org_id],
                lines[0].name,
                _joined((t(f"audience.{line.audience}", locale) for line in lines), locale),
                _joined((titles[line.instrument_id] for line in lines), locale),
                _registration(lines[0], locale),
            ]
        )
    title = t("export.sheet.waiting", locale)
    write_sheet(workbook, title, columns, rows, frozen_columns=2, autofilter=True)


def _titles(
    session: Session, round_id: int, instrument_ids: set[str], locale: str
) -> Mapping[str, str]:
    """Short titles of the forms the round pinned (满意度测评, 支部自评…)."""
    return {
        instrument_id: pinned_instrument(
            session=session, round_id=round_id, instrument_id=instrument_id
        ).display_title(locale)
        for instrument_id in instrument_ids
    }


def _joined(texts: Iterable[str], locale: str) -> str:
    """Distinct texts in order, joined as a list (党员、群众)."""
    return t("report.list_separator", locale).join(dict.fromkeys(texts))


def _registration(line: Owed, locale: str) -> str:
    """已登记 / 未登记 (docs/glossary.md), and whether the bot is blocked."""
    if not line.registered:
        return t("export.registration.unregistered", locale)
    if line.blocked:
        return t("export.registration.blocked", locale)
    return t("export.registration.registered", locale)


def _header(locale: str) -> Callable[[str], str]:
    return lambda key: t(f"export.col.{key}", locale)
