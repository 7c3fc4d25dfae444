"""The round's workbook (XLSX) mirroring the paper forms, for /export and ``ceping export``.

Rendering only: the rows come from ``storage.reports`` and ``storage.grading``, and the
forms are the versions the round pinned (``storage.instruments.pinned_instrument``).

Sheets: 自评表 (branch means) and 自评明细 (each committee member's form),
党员群众满意度测评汇总表, 观摩检查测评得分表 (means per item with every deduction reason)
and 观摩打分明细 (one line per inspector and item), 上级党组织评分定级表, 整改台账, then
参与情况 and 未参评名单 (``bot.workbook_participation``). Answer columns are named by
meaning (领导班子好-满意), and the file is named without the topic twice (``bot.sheets``).
Headers come from the message catalog (Chinese first), numbers stay numbers, header rows
are frozen, times are shown in the round's local zone (Asia/Shanghai). Small groups show
participation only, as in every other report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from bot.sheets import (
    DAY,
    PERCENT,
    SCORE,
    SHANGHAI,
    WHEN,
    Column,
    Row,
    export_filename,
    export_title,
    local,
    write_sheet,
)
from bot.workbook_participation import participation_sheet, waiting_sheet
from storage.db import Session
from storage.grading import Signature, grade_decisions, ledger, signatures
from storage.instruments import pinned_instrument
from storage.reports import (
    InspectionLine,
    inspection_lines,
    org_name,
    person_names,
    points_by_response,
    round_name,
    submitted_forms,
)
from storage.review import round_regrade
from storage.roster import masses_basis
from storage.tallies import (
    SELF_EVALUATION,
    BranchTally,
    RoundTally,
    round_tally,
    satisfaction_instrument,
)
from surveys.categories import Audience
from surveys.i18n import t
from surveys.instruments import Instrument, Item, Option


def _grade(value: Any, locale: str) -> str | None:
    return t(f"grade.{value}", locale) if value else None


# --- 自评表 --------------------------------------------------------------------------------


def _self_evaluation_sheet(
    workbook: Workbook, tally: RoundTally, instrument: Instrument, locale: str
) -> None:
    h = _headers(locale)
    items = [item for item in instrument.items if item.kind == "points"]
    columns = [
        Column(h("org")),
        *(Column(_item_header(item, locale), SCORE) for item in items),
        Column(h("self_total"), SCORE),
        Column(h("self_scorers")),
    ]
    rows = [
        [
            branch.name,
            *(branch.self_evaluation_by_item.get(item.id) for item in items),
            branch.self_evaluation,
            branch.self_evaluators,
        ]
        for branch in _by_name(tally.branches)
    ]
    write_sheet(workbook, t("export.sheet.self_evaluation", locale), columns, rows)


def _self_evaluation_detail(
    session: Session,
    workbook: Workbook,
    tally: RoundTally,
    instrument: Instrument,
    zone: tzinfo,
    locale: str,
) -> None:
    """One line per committee member's form (自评表 as each one filled it in)."""
    h = _headers(locale)
    names = {branch.org_id: branch.name for branch in tally.branches}
    items = [item for item in instrument.items if item.kind == "points"]
    rows = submitted_forms(session=session, round_id=tally.round_id, instrument_id=instrument.id)
    chosen = [row.response_id for row in rows if row.org_id in names]
    points = points_by_response(session=session, response_ids=chosen)
    columns = [
        Column(h("org")),
        Column(h("scorer")),
        *(Column(_item_header(item, locale), SCORE) for item in items),
        Column(h("self_total"), SCORE),
        Column(h("submitted_at"), WHEN),
    ]
    lines = [
        [
            names[org_id],
            scorer,
            *(points.get(response_id, {}).get(item.id) for item in items),
            total,
            local(submitted_at, zone),
        ]
        for response_id, org_id, scorer, total, submitted_at in (
            (r.response_id, r.org_id, r.scorer, r.total, r.submitted_at) for r in rows
        )
        if org_id in names
    ]
    title = t("export.sheet.self_evaluation_detail", locale)
    write_sheet(workbook, title, columns, lines, frozen_columns=2)


def _item_header(item: Item, locale: str) -> str:
    return t("export.col.item_points", locale, text=item.text.get(locale), points=item.max_points)


# --- 满意度测评汇总表 -------------------------------------------------------------------------


def _masses_basis(counted: bool, basis: str | None, locale: str) -> str | None:
    """What the masses count is: 村(居)民代表, 职工代表, or all staff without a 职代会."""
    if not counted or basis is None:
        return None
    return t(f"export.masses_basis.{basis}", locale)


def _satisfaction_sheet(
    session: Session,
    workbook: Workbook,
    tally: RoundTally,
    instrument: Instrument,
    signed: dict[int, dict[str, Signature]],
    zone: tzinfo,
    locale: str,
) -> None:
    h = _headers(locale)
    choice_items = [item for item in instrument.items if item.kind == "choice"]
    pairs = [(item, option) for item in choice_items for option in item.options]
    columns = [
        Column(h("org")),
        Column(h("members_target")),
        Column(h("members_respondents")),
        # Representatives, or all staff without a 职代会: a neutral header and the basis per row.
        Column(t("export.col.masses_count", locale)),
        Column(t("export.col.masses_basis", locale)),
        Column(h("masses_respondents")),
        Column(h("ballots")),
        *(Column(_answer_header(item, option, locale)) for item, option in pairs),
        Column(h("satisfaction_rate"), PERCENT),
        Column(h("awareness_rate"), PERCENT),
        Column(h("participation_rate"), PERCENT),
        Column(h("satisfaction_score"), SCORE),
        Column(h("note")),
        Column(h("secretary_signed")),
        Column(h("secretary_signed_at"), WHEN),
        Column(h("leader_signed")),
        Column(h("leader_signed_at"), WHEN),
    ]
    rows = []
    # Without a 职代会 the masses are all staff: say so per row (docs/rules.md §7, seed 000 二.2).
    bases = masses_basis(session, org_ids=[b.org_id for b in tally.branches])
    for branch in _by_name(tally.branches):
        members = branch.coverage.get(Audience.MEMBERS)
        masses = branch.coverage.get(Audience.MASSES)
        dist = branch.distribution
        rates = branch.rates
        signs = signed.get(branch.org_id, {})
        secretary, leader = signs.get("secretary"), signs.get("work_group_leader")
        note = None
        if branch.small_group:
            note = t("export.note.small_group", locale, threshold=tally.threshold)
        elif branch.members_only:
            note = t("export.note.members_only", locale)
        rows.append(
            [
                branch.name,
                members.denominator if members else None,
                members.respondents if members else None,
                masses.denominator if masses else None,
                _masses_basis(masses is not None, bases.get(branch.org_id), locale),
                masses.respondents if masses else None,
                branch.ballots,
                *((dist[item.id][option.id] if dist else None) for item, option in pairs),
                rates.satisfaction if rates else None,
                rates.awareness if rates else None,
                rates.participation if rates else None,
                branch.satisfaction_score,
                note,
                secretary.name if secretary else None,
                local(secretary.signed_at, zone) if secretary else None,
                leader.name if leader else None,
                local(leader.signed_at, zone) if leader else None,
            ]
        )
    write_sheet(workbook, t("export.sheet.satisfaction", locale), columns, rows)


def _answer_header(item: Item, option: Option, locale: str) -> str:
    """An answer column by meaning, 领导班子好-满意, not Q1 (issue 14)."""
    label = item.short_label or item.description
    name = label.get(locale) if label is not None else item.id.upper()
    return t("export.col.answer", locale, item=name, option=option.text.get(locale))


# --- 观摩检查测评得分表 ------------------------------------------------------------------------


def _mean(values: Sequence[Decimal | None]) -> Decimal | None:
    present = [Decimal(str(v)) for v in values if v is not None]
    if not present:
        return None
    return (sum(present, Decimal(0)) / len(present)).quantize(Decimal("0.01"))


def _inspection_sheets(
    workbook: Workbook,
    tally: RoundTally,
    lines: Sequence[InspectionLine],
    forms: Mapping[str, Instrument],
    locale: str,
) -> None:
    h = _headers(locale)
    names = {branch.org_id: branch.name for branch in tally.branches}
    by_item: dict[tuple[int, str, str], list[InspectionLine]] = defaultdict(list)
    for line in lines:
        if line.org_id in names:
            by_item[(line.org_id, line.instrument_id, line.item_id)].append(line)
    summary_columns = [
        Column(h("org")),
        Column(h("dimension")),
        Column(h("item")),
        Column(h("points"), SCORE),
        Column(h("mean_deduction"), SCORE),
        Column(h("mean_score"), SCORE),
        Column(h("reasons")),
    ]
    summary: list[Row] = []
    for org_id, instrument_id in _inspected(by_item, tally):
        instrument = forms[instrument_id]
        for section in instrument.sections:
            for item in section.items:
                found = by_item.get((org_id, instrument_id, item.id), [])
                reasons = [f"{line.inspector}：{line.reason}" for line in found if line.reason]
                summary.append(
                    [
                        names[org_id],
                        section.title.get(locale),
                        item.text.get(locale),
                        item.max_points,
                        _mean([line.deduction for line in found]),
                        _mean([line.score for line in found]),
                        "\n".join(reasons) or None,
                    ]
                )
        branch = tally.branch(org_id)
        summary.append(
            [
                names[org_id],
                h("total_row"),
                None,
                Decimal(100),
                None,
                branch.inspection if branch else None,
                None,
            ]
        )
    write_sheet(workbook, t("export.sheet.inspection", locale), summary_columns, summary)
    detail_columns = [
        Column(h("org")),
        Column(h("inspector")),
        Column(h("item")),
        Column(h("deduction"), SCORE),
        Column(h("reason")),
        Column(h("score"), SCORE),
    ]
    detail = [
        [
            names[line.org_id],
            line.inspector,
            forms[line.instrument_id].item(line.item_id).text.get(locale),
            line.deduction,
            line.reason,
            line.score,
        ]
        for line in lines
        if line.org_id in names
    ]
    write_sheet(workbook, t("export.sheet.inspection_detail", locale), detail_columns, detail)


def _inspected(
    by_item: dict[tuple[int, str, str], list[InspectionLine]], tally: RoundTally
) -> list[tuple[int, str]]:
    """(branch, sheet) pairs that were inspected, in the branches' name order."""
    pairs = {(org_id, instrument_id) for org_id, instrument_id, _ in by_item}
    order = {branch.org_id: index for index, branch in enumerate(_by_name(tally.branches))}
    return sorted(pairs, key=lambda pair: (order[pair[0]], pair[1]))


# --- 上级党组织评分定级表 -----------------------------------------------------------------------


def _grading_sheet(
    session: Session, workbook: Workbook, tally: RoundTally, zone: tzinfo, locale: str
) -> None:
    h = _headers(locale)
    decisions = grade_decisions(session, round_id=tally.round_id)
    deciders = person_names(
        session=session, person_ids={d.decided_by for d in decisions.values() if d.decided_by}
    )
    columns = [
        Column(h("rank")),
        Column(h("org")),
        Column(h("category")),
        Column(h("self_total"), SCORE),
        Column(h("satisfaction_score"), SCORE),
        Column(h("inspection_score"), SCORE),
        Column(h("composite"), SCORE),
        Column(h("superior_score"), SCORE),
        Column(h("grading_score"), SCORE),
        Column(h("grade_by_threshold")),
        Column(h("proposed_grade")),
        Column(h("proposal_reason")),
        Column(h("tie_at_edge")),
        Column(h("vetoes")),
        Column(h("final_grade")),
        Column(h("decision_reason")),
        Column(h("decided_by")),
        Column(h("decided_at"), WHEN),
    ]
    # A quarterly re-grading shows the previous grade and the movement (docs/rules.md §11).
    moves = {row.org_id: row for row in round_regrade(session, round_id=tally.round_id) or []}
    if moves:
        columns += [
            Column(t("export.col.previous_grade", locale)),
            Column(t("export.col.movement", locale)),
        ]
    rows = []
    for branch in tally.branches:
        proposal = branch.proposal
        decision = decisions.get(branch.org_id)
        move = moves.get(branch.org_id)
        extra = []
        if moves:
            extra = [
                _grade(move.previous.value if move and move.previous else None, locale),
                t(f"regrade.movement.{move.movement.value}", locale)
                if move and move.movement
                else None,
            ]
        rows.append(
            [
                proposal.rank if proposal else None,
                branch.name,
                t(f"category.{branch.category.value}", locale),
                branch.self_evaluation,
                branch.satisfaction_score,
                branch.inspection,
                branch.composite.score,
                branch.superior,
                branch.grading_score,
                _grade(proposal.by_threshold.value if proposal else None, locale),
                _grade(proposal.grade.value if proposal else None, locale),
                t(f"proposal_reason.{proposal.reason.value}", locale) if proposal else None,
                t("export.yes", locale) if proposal and proposal.tie_at_edge else None,
                _veto_names(branch, locale),
                _grade(decision.final_grade if decision else None, locale),
                decision.reason if decision else None,
                deciders.get(decision.decided_by) if decision and decision.decided_by else None,
                local(decision.decided_at, zone) if decision else None,
                *extra,
            ]
        )
    write_sheet(workbook, t("export.sheet.grading", locale), columns, rows, frozen_columns=2)


def _veto_names(branch: BranchTally, locale: str) -> str | None:
    names = [t(f"veto.{code}", locale) for code in branch.vetoes]
    return t("report.list_separator", locale).join(names) or None


# --- 整改台账 -------------------------------------------------------------------------------


def _ledger_sheet(
    session: Session, workbook: Workbook, tally: RoundTally, zone: tzinfo, locale: str
) -> None:
    h = _headers(locale)
    names = {branch.org_id: branch.name for branch in tally.branches}
    columns = [
        Column(h("org")),
        Column(h("matter")),
        Column(h("measures")),
        Column(h("due_on"), DAY),
        Column(h("responsible")),
        Column(h("closed_at"), WHEN),
    ]
    rows = [
        [
            names.get(line.org_id) or _org_name(session, line.org_id),
            line.matter,
            line.measures,
            line.due_on,
            line.responsible,
            local(line.closed_at, zone),
        ]
        for line in ledger(session, org_ids=list(names), round_id=tally.round_id)
    ]
    write_sheet(workbook, t("export.sheet.ledger", locale), columns, rows)


def _org_name(session: Session, org_id: int) -> str:
    return org_name(session=session, org_id=org_id) or str(org_id)


# --- The workbook --------------------------------------------------------------------------


def _headers(locale: str) -> Callable[[str], str]:
    return lambda key: t(f"export.col.{key}", locale)


def _by_name(branches: Sequence[BranchTally]) -> list[BranchTally]:
    return sorted(branches, key=lambda branch: (branch.name, branch.org_id))


def build_workbook(
    session: Session,
    *,
    round_id: int,
    locale: str = "zh_CN",
    org_ids: Iterable[int] | None = None,
    zone: tzinfo = SHANGHAI,
    now: datetime | None = None,
    shows_proposal: Callable[[int], bool] | None = None,
) -> Workbook:
    """The round's workbook in memory (only the given branches when org_ids is given).

    ``now`` judges the satisfaction deadlines (参与面未达标, docs/rules.md §6), as /tally does;
    ``shows_proposal`` keeps an undecided proposal only for the branches it accepts, so a
    secretary's export shows decided grades only, as their /tally does.
    """
    name = round_name(session=session, round_id=round_id)
    if name is None:
        raise LookupError(f"round {round_id}")
    wanted = None if org_ids is None else list(org_ids)
    tally = round_tally(session, round_id=round_id, org_ids=wanted, distribution=True, now=now)
    if shows_proposal is not None:
        branches = [
            b if shows_proposal(b.org_id) else replace(b, proposal=None) for b in tally.branches
        ]
        tally = replace(tally, branches=branches)
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    self_form = pinned_instrument(session=session, round_id=round_id, instrument_id=SELF_EVALUATION)
    _self_evaluation_sheet(workbook, tally, self_form, locale)
    _self_evaluation_detail(session, workbook, tally, self_form, zone, locale)
    signed = signatures(session, round_id=round_id, org_ids=[b.org_id for b in tally.branches])
    satisfaction = satisfaction_instrument(session, round_id)
    _satisfaction_sheet(session, workbook, tally, satisfaction, signed, zone, locale)
    lines = inspection_lines(session=session, round_id=round_id)
    forms = {
        instrument_id: pinned_instrument(
            session=session, round_id=round_id, instrument_id=instrument_id
        )
        for instrument_id in {line.instrument_id for line in lines}
    }
    _inspection_sheets(workbook, tally, lines, forms, locale)
    _grading_sheet(session, workbook, tally, zone, locale)
    _ledger_sheet(session, workbook, tally, zone, locale)
    participation_sheet(workbook, tally, locale)
    waiting_sheet(session, workbook, tally, locale)
    workbook.properties.title = export_title(name, locale)
    return workbook


def write_workbook(
    session: Session,
    *,
    round_id: int,
    path: Path,
    locale: str = "zh_CN",
    org_ids: Iterable[int] | None = None,
    zone: tzinfo = SHANGHAI,
    now: datetime | None = None,
) -> Path:
    """Write the round's workbook to path (a directory gets a file named after the round)."""
    path = Path(path)
    if path.is_dir():
        name = round_name(session=session, round_id=round_id) or str(round_id)
        path = path / export_filename(name, locale)
    build_workbook(
        session, round_id=round_id, locale=locale, org_ids=org_ids, zone=zone, now=now
    ).save(path)
    return path
