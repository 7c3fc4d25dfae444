"""Text at the boundaries: spreadsheet cells, Telegram's message limit, hidden characters."""

from __future__ import annotations

import random

import pytest

from surveys.text import (
    TELEGRAM_MESSAGE_LIMIT,
    chunk_lines,
    forbidden_characters,
    neutralize_cell,
    split_message,
    utf16_length,
)


@pytest.mark.parametrize(
    "value",
    ["=HYPERLINK(\"http://x\",\"点我\")", "=1+2", "+86 138", "-3", "@SUM(A1)", "\tx", "\rx"],
)
def test_a_value_a_spreadsheet_would_run_is_written_as_text(value: str) -> None:
    assert neutralize_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["东盾村", "张三", "1+2", "a=b", "", "'quoted"])
def test_ordinary_text_is_left_alone(value: str) -> None:
    assert neutralize_cell(value) == value


def test_a_bidi_override_in_a_name_is_found() -> None:
    assert forbidden_characters("张\u202e三") == ["U+202E"]


def test_control_characters_are_found_and_line_breaks_only_allowed_in_notes() -> None:
    assert forbidden_characters("a\x00b\nc") == ["U+0000", "U+000A"]
    assert forbidden_characters("a\x00b\nc", multiline=True) == ["U+0000"]
    assert forbidden_characters("李书记（东盾村）") == []


def test_a_short_reply_is_one_message() -> None:
    assert split_message("第一行\n第二行") == ["第一行\n第二行"]


def test_four_hundred_names_are_split_on_line_boundaries_within_the_limit() -> None:
    lines = [f"{index:03d} 东盾村党员{index}同志 13800000000" for index in range(400)]
    text = "\n".join(lines)
    assert utf16_length(text) > TELEGRAM_MESSAGE_LIMIT
    parts = split_message(text)
    assert len(parts) > 1
    assert all(utf16_length(part) <= TELEGRAM_MESSAGE_LIMIT for part in parts)
    assert "\n".join(parts).split("\n") == lines  # nothing lost, no line cut


def test_a_single_line_longer_than_the_limit_is_cut_inside_itself() -> None:
    parts = chunk_lines(["甲" * 25], limit=10)
    assert parts == ["甲" * 10, "甲" * 10, "甲" * 5]


def test_emoji_count_twice_as_telegram_counts() -> None:
    assert utf16_length("😀") == 2
    parts = chunk_lines(["😀" * 6], limit=5)
    assert all(utf16_length(part) <= 5 for part in parts)
    assert "".join(parts) == "😀" * 6


def test_random_texts_always_fit_and_lose_nothing() -> None:
    generator = random.Random(20261129)
    alphabet = "东盾村党员ab😀 "
    for _ in range(300):
        lines = [
            "".join(generator.choice(alphabet) for _ in range(generator.randint(0, 40)))
            for _ in range(generator.randint(1, 30))
        ]
        limit = generator.randint(8, 60)
        parts = chunk_lines(lines, limit)
        assert all(utf16_length(part) <= limit for part in parts)
        assert "".join(parts).replace("\n", "") == "".join(lines)
