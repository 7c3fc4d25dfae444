"""Reading the dates people type: phase deadlines (local time) and rectification due dates."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, tzinfo

from surveys.categories import Phase
from surveys.errors import RuleError
from surveys.i18n import t


def parse_local_time(text: str, zone: tzinfo) -> datetime:
    """A local "YYYY-MM-DDTHH:MM" (or with a space) as an aware UTC datetime.

    A time written with an offset keeps it; one without is read in ``zone``.
    """
    try:
        local = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RuleError("bad_time", value=text) from None
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
    return local.astimezone(UTC)


def parse_phase_time(text: str, zone: tzinfo) -> tuple[Phase, datetime]:
    """PHASE=YYYY-MM-DDTHH:MM (local time) as the phase and an aware UTC datetime."""
    name, equals, when = text.partition("=")
    try:
        phase = Phase(name.strip())
    except ValueError:
        raise RuleError("unknown_phase", phase=name.strip()) from None
    if not equals:
        raise RuleError("bad_time", value=text)
    return phase, parse_local_time(when, zone)


_DATE_PATTERNS = (
    re.compile(r"^(?P<y>\d{4})[-/.年](?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})日?$"),
    re.compile(r"^(?P<m>\d{1,2})[-/.月](?P<d>\d{1,2})日?$"),
)


def parse_due_date(text: str, *, today: date) -> date | None:
    """A deadline typed as 2027-04-30, 2027/4/30, 2027年4月30日 or 4月30日 (next such day)."""
    normalized = unicodedata.normalize("NFKC", text).strip().replace(" ", "")
    for pattern in _DATE_PATTERNS:
        match = pattern.match(normalized)
        if match is None:
            continue
        parts = match.groupdict()
        year = int(parts["y"]) if parts.get("y") else today.year
        try:
            due = date(year, int(parts["m"]), int(parts["d"]))
        except ValueError:
            return None
        if not parts.get("y") and due < today:
            due = due.replace(year=today.year + 1)
        return due
    return None


def deadline_words(moment: datetime, zone: tzinfo, locale: str) -> str:
    """A deadline as people write it in a group chat, in local time: 12月5日（周六）18:00前.

    The catalog holds the pattern and the names of weekdays and months (English: "by
    Sat 5 December, 18:00").
    """
    local = moment.astimezone(zone)
    return t(
        "secretary.deadline",
        locale,
        month=t(f"secretary.month.{local.month}", locale),
        day=local.day,
        weekday=t(f"secretary.weekday.{local.weekday()}", locale),
        time=local.strftime("%H:%M"),
    )
