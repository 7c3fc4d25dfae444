"""Rules for text crossing a boundary: into a spreadsheet, a Telegram message, a column.

Pure functions, shared by the bot (replies, workbooks), the jobs (digests) and the roster
import, so that each boundary is guarded by one rule written once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

TELEGRAM_MESSAGE_LIMIT = 4096
"""Telegram refuses a text message longer than this many characters (UTF-16 code units)."""

# A spreadsheet reads a cell that starts with one of these as a formula (or, for tab and CR,
# shifts the cell in CSV), so roster or typed text must not start with them unescaped.
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

# Characters a person never means to type in a name or a note, but which can disguise one:
# control characters (Cc) and format characters (Cf), such as U+202E RIGHT-TO-LEFT OVERRIDE.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf"})
# Line breaks are Cc too, but a multi-line note legitimately holds them.
_LINE_BREAKS = frozenset({"\n"})


def short_number(value: Decimal | int, places: int = 2) -> str:
    """A number as a report shows it: half up to ``places``, trailing zero decimals dropped.

    88.00 → 88, 88.50 → 88.5, 88.19 → 88.19 (issue 14: ".00" on every line of a table is
    noise on a phone). Rounding is for display only (docs/rules.md §5.1); never compare these.
    """
    rounded = Decimal(value).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = f"{rounded:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def neutralize_cell(value: str) -> str:
    """Return ``value`` as a spreadsheet will show it as text, never run it as a formula.

    OWASP's advice for CSV/XLSX injection: prefix a leading trigger character with an
    apostrophe, which Excel, LibreOffice and WPS hide and treat as "this is text".
    """
    if value.startswith(_FORMULA_TRIGGERS):
        return "'" + value
    return value


def safe_cell(value: object) -> object:
    """A value ready for a spreadsheet or CSV cell: text neutralised, numbers and dates as-is.

    The one rule every writer of roster or typed text into a cell applies (issue 10, item 1).
    """
    return neutralize_cell(value) if isinstance(value, str) else value


def safe_row(values: Iterable[object]) -> list[object]:
    """A whole row through :func:`safe_cell`."""
    return [safe_cell(value) for value in values]


def forbidden_characters(text: str, *, multiline: bool = False) -> list[str]:
    """The control and format characters in ``text``, as ``U+XXXX`` names, in order."""
    allowed = _LINE_BREAKS if multiline else frozenset()
    found: list[str] = []
    for character in text:
        if character in allowed:
            continue
        if unicodedata.category(character) in _FORBIDDEN_CATEGORIES:
            found.append(f"U+{ord(character):04X}")
    return found


def utf16_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def _split_long_line(line: str, limit: int) -> list[str]:
    """Cut one line longer than ``limit`` into pieces that fit (no line boundary to use)."""
    pieces: list[str] = []
    current = ""
    for character in line:
        if utf16_length(current) + utf16_length(character) > limit:
            pieces.append(current)
            current = ""
        current += character
    if current:
        pieces.append(current)
    return pieces


def chunk_lines(lines: Iterable[str], limit: int = TELEGRAM_MESSAGE_LIMIT) -> list[str]:
    """Join ``lines`` into as few texts of at most ``limit`` characters as possible.

    Texts break on line boundaries; a single line longer than ``limit`` is cut inside itself,
    since there is no better place.
    """
    if limit < 1:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        for piece in _split_long_line(line, limit) if utf16_length(line) > limit else [line]:
            width = utf16_length(piece)
            if current and size + 1 + width > limit:
                chunks.append("\n".join(current))
                current, size = [], 0
            size += width + (1 if current else 0)
            current.append(piece)
    if current:
        chunks.append("\n".join(current))
    return chunks


def split_message(text: str, limit: int = TELEGRAM_MESSAGE_LIMIT) -> list[str]:
    """Split a reply into messages Telegram accepts, on line boundaries where possible."""
    if utf16_length(text) <= limit:
        return [text]
    return chunk_lines(text.split("\n"), limit)
