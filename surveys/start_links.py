"""The start-or-resume button of a survey: ``s:<assignment>``.

Drawn by the bot's to-do list and by the reminders the jobs enqueue, decoded by the
bot's answering handlers; it lives here, below both, so ``jobs`` need not import ``bot``.
Pure: no database, no Telegram.
"""

from __future__ import annotations

import re

MAX_CALLBACK_BYTES = 64
"""Telegram's limit on a button's callback data."""

START_PATTERN = re.compile(r"^s:(?P<assignment>[1-9][0-9]{0,17})$")


def encode_start(assignment_id: int) -> str:
    """The data of a button that starts or resumes a survey."""
    data = f"s:{assignment_id}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data longer than {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data


def decode_start(data: str) -> int | None:
    """The assignment id of start-button data, None for any other data."""
    match = START_PATTERN.match(data)
    return int(match["assignment"]) if match else None
