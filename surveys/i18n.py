"""The message catalog: every text a user reads, in simplified Chinese and English.

Texts live in gettext ``.po`` files under ``surveys/locale/<locale>/LC_MESSAGES/``; each
area of the product owns one file and all files of a locale are merged. msgids are
dotted keys (``survey.anonymous_notice``), msgstrs are ``str.format`` templates.
Babel reads the files at run time, so there is no compile step to forget.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
DEFAULT_LOCALE = "zh_CN"


class MissingMessage(KeyError):
    """A key that no catalog of the default locale defines: a bug, never user input."""


@cache
def catalog(locale: str) -> dict[str, str]:
    """All messages of one locale, merged from every .po file of that locale."""
    messages: dict[str, str] = {}
    for path in sorted((LOCALE_DIR / locale / "LC_MESSAGES").glob("*.po")):
        with path.open("rb") as handle:
            for message in read_po(handle, locale=locale):
                if message.id and message.string:
                    messages[str(message.id)] = str(message.string)
    return messages


def available_locales() -> list[str]:
    """Locales that have at least one catalog file."""
    return sorted(p.name for p in LOCALE_DIR.iterdir() if (p / "LC_MESSAGES").is_dir())


def normalize_locale(language: str | None) -> str:
    """Map a Telegram ``language_code`` (``zh-hans``, ``en-US``…) to a catalog locale."""
    if not language:
        return DEFAULT_LOCALE
    lowered = language.lower().replace("-", "_")
    if lowered.startswith("en"):
        return "en"
    return DEFAULT_LOCALE


def t(key: str, locale: str = DEFAULT_LOCALE, /, **kwargs: object) -> str:
    """The text for ``key`` in ``locale`` (falling back to Chinese), formatted with kwargs."""
    template = catalog(locale).get(key) or catalog(DEFAULT_LOCALE).get(key)
    if template is None:
        raise MissingMessage(key)
    return template.format(**kwargs) if kwargs else template
