"""Monospace tables for a phone: the numbers first, the name last (issue 14).

In a Telegram ``<pre>`` block a Chinese character is not exactly two Latin columns wide on
phones, so any column after a Chinese name drifts. Every table therefore puts its Latin
columns (rank, counts, scores) first, a short text column (the grade) next and the name
last, where drift moves nothing after it. Pure: plain strings in, lines out.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

EMPTY = "-"  # an empty number cell: Latin, so it is as wide as a digit on every phone


def width(text: str) -> int:
    """Display columns of a text in a monospace font (wide characters count two)."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def pad(text: str, columns: int, *, right: bool = False) -> str:
    """Pad (or cut) text to exactly ``columns`` display columns."""
    cut = ""
    for char in text:
        if width(cut + char) > columns:
            break
        cut += char
    fill = " " * (columns - width(cut))
    return fill + cut if right else cut + fill


def table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Lines of a table whose last column (the name) is never padded.

    ``align`` has one letter per column before the name: ``l`` pads on the right, ``r`` on
    the left (numbers). Each column is as wide as its widest cell, header included.
    """
    if len(align) != len(header) - 1:
        raise ValueError("one alignment per column before the name")
    widths = [max(width(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            pad(cell, columns, right=side == "r")
            for cell, columns, side in zip(cells, widths, align, strict=False)
        ]
        return " ".join([*padded, cells[-1]])

    return [line(header), *(line(row) for row in rows)]
