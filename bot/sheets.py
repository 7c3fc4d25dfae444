"""Writing one sheet of a workbook, and the workbook's name: shared by every sheet module.

Headers are bold and frozen, numbers stay numbers with a number format, roster and typed
text never runs as a formula, times are local (Excel has no time zones). A sheet meant to
be sorted and filtered (a list of people, a participation table) gets an autofilter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from surveys.grading import display_score
from surveys.i18n import available_locales, t
from surveys.text import safe_row

SHANGHAI = ZoneInfo("Asia/Shanghai")
PERCENT = "0.00%"
SCORE = "0.00"
WHEN = "yyyy-mm-dd hh:mm"
DAY = "yyyy-mm-dd"
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_MAX_WIDTH = 60

Cell = Any
Row = list[Cell]


@dataclass(frozen=True)
class Column:
    """A column: its catalog header (or literal text) and the number format of its cells."""

    header: str
    number_format: str | None = None


def _text_width(value: Cell) -> int:
    """Display width: CJK characters take two columns."""
    text = value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else str(value)
    longest = max((line for line in text.splitlines()), key=len, default="")
    return sum(2 if ord(char) > 0x2E7F else 1 for char in longest)


def _shown(value: object, column: Column) -> object:
    """Scores are exact inside (docs/rules.md §5.1); the sheet shows them as the paper does."""
    if isinstance(value, Decimal) and column.number_format == SCORE:
        return display_score(value)
    return value


def write_sheet(
    workbook: Workbook,
    title: str,
    columns: Sequence[Column],
    rows: Iterable[Row],
    frozen_columns: int = 1,
    *,
    autofilter: bool = False,
) -> Worksheet:
    """A sheet with a bold frozen header, formatted numbers and readable column widths."""
    sheet = workbook.create_sheet(title[:31])
    sheet.append([column.header for column in columns])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    widths = [_text_width(column.header) for column in columns]
    for raw in rows:
        shown = [_shown(value, column) for value, column in zip(raw, columns, strict=True)]
        # Roster names and typed reasons are text, never formulas (issue 10, item 1).
        row = safe_row(shown)
        sheet.append(row)
        for index, value in enumerate(row):
            if value is not None:
                widths[index] = max(widths[index], _text_width(value))
    for index, column in enumerate(columns, start=1):
        letter = get_column_letter(index)
        # The filter's drop-down button sits in the header cell: leave room for it.
        extra = 4 if autofilter else 2
        sheet.column_dimensions[letter].width = min(_MAX_WIDTH, widths[index - 1] + extra)
        if column.number_format:
            for (cell,) in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                cell.number_format = column.number_format
    # The header row and the branch name stay in view while scrolling.
    sheet.freeze_panes = f"{get_column_letter(frozen_columns + 1)}2"
    if autofilter:
        sheet.auto_filter.ref = sheet.dimensions  # header and every row, all columns
    return sheet


def local(when: datetime | None, zone: tzinfo) -> datetime | None:
    """An aware UTC time as a naive local time (Excel has no time zones)."""
    return when.astimezone(zone).replace(tzinfo=None) if when is not None else None


def _named(key: str, round_name: str, locale: str) -> str:
    """``key``'s text for the round, without the topic twice (…分类定级分类定级汇总).

    A round is often named after the work itself (2026年度基层党组织分类定级); then the
    name already says what the file is, and only 汇总 is added.
    """
    # The round's name is in Chinese whatever the reader's language: check every locale's word.
    topics = {t("export.topic", other) for other in available_locales()}
    if round_name.endswith(tuple(topics)):
        return t(f"{key}_named", locale, round=round_name)
    return t(key, locale, round=round_name)


def export_title(round_name: str, locale: str) -> str:
    """The workbook's title: 2026年度分类定级汇总, or 2026年度基层党组织分类定级汇总."""
    return _named("export.title", round_name, locale)


def export_filename(round_name: str, locale: str) -> str:
    """The file's name: the title and .xlsx."""
    return _named("export.filename", round_name, locale)
