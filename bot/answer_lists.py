"""What a person has to answer: the to-do list and an inspector's branches (问卷作答).

Pure functions like ``bot.survey_views``: entries in, a screen out. Every entry is named
by its short display name and branch (满意度测评 · 东盾村), so an organizer's sixteen
superior scorings are sixteen different buttons, and what was submitted is listed too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.callbacks import encode_branch_list, encode_start
from bot.survey_views import View, short_branch
from surveys.i18n import t


@dataclass(frozen=True)
class TodoEntry:
    """One assignment as the to-do list shows it."""

    assignment_id: int
    round_id: int
    title: str  # the instrument's short display title (满意度测评)
    branch_name: str
    answered: int
    total: int
    status: str  # pending | in_progress | submitted
    window: str  # storage.responses.WindowState value
    opens_at: datetime | None
    deadline: datetime | None
    inspection: bool
    scored: bool = False  # a scored sheet counts 项 (lines), a questionnaire 题

    def unit(self, locale: str) -> str:
        """题 or 项, as the form counts its items."""
        return t("answering.unit.item" if self.scored else "answering.unit.question", locale)

    def name(self, locale: str) -> str:
        """满意度测评 · 东盾村."""
        return t(
            "answering.display_name",
            locale,
            title=self.title,
            branch=short_branch(self.branch_name),
        )


def _button(label: str, data: str) -> InlineKeyboardButton:
    """An inline button that sends callback data."""
    return InlineKeyboardButton(label, callback_data=data)


def format_time(value: datetime, locale: str, zone: ZoneInfo) -> str:
    """A UTC time as the local wall clock (Asia/Shanghai by default)."""
    return t("common.datetime", locale, value=value.astimezone(zone))


def _when_line(entry: TodoEntry, locale: str, zone: ZoneInfo) -> str:
    """截止 …, 尚未开始（…开放）or 已截止."""
    if entry.window == "not_open" and entry.opens_at is not None:
        return t("answering.todo.opens", locale, when=format_time(entry.opens_at, locale, zone))
    if entry.window == "not_open":
        return t("answering.todo.not_open", locale)
    if entry.window == "closed" or entry.deadline is None:
        return t("answering.todo.closed", locale)
    return t("answering.todo.deadline", locale, when=format_time(entry.deadline, locale, zone))


def todo_view(entries: Sequence[TodoEntry], locale: str, zone: ZoneInfo) -> View:
    """What is still to do, with deadlines and progress, a button each; then what is done.

    Inspection assignments are grouped per round behind one button that lists the branches.
    """
    pending = [entry for entry in entries if entry.status != "submitted"]
    done = _done_lines(entries, locale)
    if not pending:
        return View("\n".join([t("answering.todo.nothing", locale), *done]))
    lines = [t("answering.todo.title", locale)]
    rows: list[list[InlineKeyboardButton]] = []
    number = 0
    for entry in _without_inspection(pending):
        number += 1
        lines.append(
            t(
                "answering.todo.line",
                locale,
                number=number,
                name=entry.name(locale),
                answered=entry.answered,
                total=entry.total,
                unit=entry.unit(locale),
                when=_when_line(entry, locale, zone),
            )
        )
        if entry.window == "open":
            key = "answering.button.resume" if entry.answered else "answering.button.start"
            label = t(key, locale, title=entry.name(locale))
            rows.append([_button(label, encode_start(entry.assignment_id))])
    for round_id, group in _inspection_groups(entries).items():
        if all(entry.status == "submitted" for entry in group):
            continue
        number += 1
        first = group[0]
        submitted = sum(1 for entry in group if entry.status == "submitted")
        lines.append(
            t(
                "answering.todo.inspection_line",
                locale,
                number=number,
                title=first.title,
                done=submitted,
                count=len(group),
                when=_when_line(first, locale, zone),
            )
        )
        if first.window == "open":
            label = t("answering.button.branches", locale, title=first.title)
            rows.append([_button(label, encode_branch_list(round_id))])
    if done:
        lines += ["", t("answering.todo.done_title", locale), *done]
    return View("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)


def _done_lines(entries: Iterable[TodoEntry], locale: str) -> list[str]:
    """满意度测评 · 东盾村：已提交 ✅ — one line for each submitted entry."""
    return [
        t("answering.todo.done_line", locale, name=entry.name(locale))
        for entry in entries
        if entry.status == "submitted"
    ]


def _without_inspection(entries: Iterable[TodoEntry]) -> list[TodoEntry]:
    """The entries that are not inspection sheets."""
    return [entry for entry in entries if not entry.inspection]


def _inspection_groups(entries: Iterable[TodoEntry]) -> dict[int, list[TodoEntry]]:
    """Inspection entries by round."""
    groups: dict[int, list[TodoEntry]] = {}
    for entry in entries:
        if entry.inspection:
            groups.setdefault(entry.round_id, []).append(entry)
    return groups


def branch_list_view(entries: Sequence[TodoEntry], locale: str, zone: ZoneInfo) -> View:
    """An inspector's branches in one round, with status; a button for each one still to score."""
    if not entries:
        return View(t("answering.todo.nothing", locale))
    first = entries[0]
    lines = [
        t("answering.branches.title", locale, title=first.title),
        _when_line(first, locale, zone),
    ]
    rows: list[list[InlineKeyboardButton]] = []
    for entry in entries:
        status = t(
            f"answering.status.{entry.status}",
            locale,
            answered=entry.answered,
            total=entry.total,
        )
        branch = short_branch(entry.branch_name)
        lines.append(t("answering.branches.line", locale, branch=branch, status=status))
        if entry.status != "submitted" and entry.window == "open":
            label = t("answering.branches.button", locale, branch=branch, status=status)
            rows.append([_button(label, encode_start(entry.assignment_id))])
    return View("\n".join(lines), InlineKeyboardMarkup(rows) if rows else None)


def window_text(
    window: str,
    *,
    opens_at: datetime | None,
    deadline: datetime | None,
    locale: str,
    zone: ZoneInfo,
) -> str:
    """Why answers are not taken now, with the dates."""
    if window == "not_open":
        if opens_at is not None:
            when = format_time(opens_at, locale, zone)
            return t("answering.window.not_yet", locale, when=when)
        return t("answering.window.not_open", locale)
    if deadline is not None:
        return t("answering.window.closed", locale, when=format_time(deadline, locale, zone))
    return t("answering.window.round_closed", locale)
