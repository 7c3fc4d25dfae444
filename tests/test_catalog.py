"""The message catalogs speak one vocabulary (docs/glossary.md) with one typography.

Fails on: a word the glossary's "Words avoided" table lists under "not", full-width
punctuation or "(s)" in English, the wrong quotation marks, a Western space around a name
in Chinese, a key defined twice across the .po files of a locale, and a key that one
locale has and the other lacks.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from surveys.i18n import LOCALE_DIR

GLOSSARY = Path(__file__).resolve().parent.parent / "docs" / "glossary.md"
LOCALES = {"zh": "zh_CN", "en": "en"}
FULL_WIDTH = re.compile(r"[\u3000-\u303f\uff00-\uffef]")
NAME_FIELDS = "name|branch|org|organization|person|names"
CJK = r"[\u4e00-\u9fff“”（）：，。；、]"
SPACED_NAME = re.compile(rf"(?<={CJK}) \{{(?:{NAME_FIELDS})\}}|\{{(?:{NAME_FIELDS})\}} (?={CJK})")


def entries(locale: str) -> list[tuple[str, str, str]]:
    """(file name, key, text) of every message of a locale, in file order."""
    found = []
    for path in sorted((Path(LOCALE_DIR) / locale / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as handle:
            for message in read_po(handle, locale=locale):
                if message.id:
                    found.append((path.name, str(message.id), str(message.string)))
    return found


def avoided_words() -> list[tuple[str, str]]:
    """(locale, word) for every word of the glossary's "Words avoided" table."""
    text = GLOSSARY.read_text(encoding="utf-8")
    section = text.split("## Words avoided", 1)[1]
    words = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in LOCALES:
            continue
        words += [(LOCALES[cells[0]], word.strip()) for word in cells[2].split(",") if word.strip()]
    return words


def uses(text: str, word: str, locale: str) -> bool:
    """Whether a message uses the word (English: as a whole word, any case)."""
    if locale == "en":
        return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None
    return word in text


def test_the_glossary_lists_the_words_to_avoid_in_both_languages() -> None:
    words = avoided_words()
    assert ("zh_CN", "未注册") in words and ("en", "registration link") in words


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_no_message_uses_a_word_the_glossary_avoids(locale: str) -> None:
    wrong = [
        f"{file}:{key}: {word!r} in {text!r}"
        for word_locale, word in avoided_words()
        if word_locale == locale
        for file, key, text in entries(locale)
        if uses(text, word, locale)
    ]
    assert wrong == []


def test_english_has_no_full_width_punctuation_and_no_parenthesized_plurals() -> None:
    wrong = [
        f"{file}:{key}: {text!r}"
        for file, key, text in entries("en")
        if FULL_WIDTH.search(text) or "(s)" in text
    ]
    assert wrong == []


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_one_style_of_quotation_marks(locale: str) -> None:
    wrong = [
        f"{file}:{key}: {text!r}"
        for file, key, text in entries(locale)
        if '"' in text or "「" in text or "」" in text
    ]
    assert wrong == []


def test_no_western_space_around_a_name_in_chinese() -> None:
    wrong = [
        f"{file}:{key}: {text!r}"
        for file, key, text in entries("zh_CN")
        if SPACED_NAME.search(text)
    ]
    assert wrong == []


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_no_key_is_defined_twice(locale: str) -> None:
    counts = Counter(key for _, key, _ in entries(locale))
    assert [key for key, count in counts.items() if count > 1] == []


def test_both_languages_have_the_same_keys() -> None:
    chinese = {key for _, key, _ in entries("zh_CN")}
    english = {key for _, key, _ in entries("en")}
    assert sorted(chinese - english) == [] and sorted(english - chinese) == []
