"""Round options (``Round.options``): one typed reader, the defaults in one place.

The database keeps the options as JSON, exactly as ``parse_option_pairs`` writes them from
``ceping round create --option KEY=VALUE``; every reader goes through :class:`RoundOptions`,
which refuses unknown keys and malformed values instead of guessing.

Keys, their JSON form, and the default when absent (the constants below):

* ``targets``: {rate key of ``DEFAULT_TARGET_RATES``: "0.8"} — participation targets
* ``weights``: {"self_evaluation"|"satisfaction"|"inspection": "0.3"} — composite weights,
  default ``DEFAULT_COMPOSITE_WEIGHTS`` (30% / 40% / 30%)
* ``good_share`` / ``poor_share``: "0.2" / "0.1" — the grade quotas
* ``reminder_offsets``: [72, 24, 3] — hours before a deadline to remind
* ``small_group_threshold``: 5 — fewer satisfaction ballots show no breakdown
* ``quiet_hours``: {"start": "21:00", "end": "08:00"} — local time, no reminders; false (written
  by ``quiet_hours=off``) reminds at any hour
* ``interim_time``: "18:00" — local time of day for interim results to secretaries
* ``categories``: ["village", "community"] — the categories the round grades (its scope,
  docs/rules.md §2); absent: every graded category
* ``kind``: "annual" | "quarterly_regrade" — a quarterly re-grading of 两新 organizations
  (docs/rules.md §11, seed 002); default "annual"
* ``sample``: [org ids] — the branches a quarterly re-grading samples; the others carry
  their previous grade forward; absent: every branch in scope
* ``institution_sheet``: "none" | "village" | "two_new" — the inspection sheet of 机关事业单位
  (docs/rules.md §3.5); default "none": the seeds give them none
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

from surveys.categories import Category, parse_category
from surveys.errors import RuleError
from surveys.grading import DEFAULT_INSTITUTION_SHEET, InstitutionSheet, in_scope
from surveys.review import REGRADE_CATEGORIES, RoundKind
from surveys.rules import (
    DEFAULT_COMPOSITE_WEIGHTS,
    DEFAULT_GOOD_SHARE,
    DEFAULT_POOR_SHARE,
    DEFAULT_TARGET_RATES,
)

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


class OptionError(RuleError):
    """A round option refused (``bad_option`` or ``unknown_option``)."""


def _clock(text: str) -> time:
    """A local time of day written HH:MM (as the writer stores it)."""
    match = _CLOCK.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"not a time of day HH:MM: {text!r}")
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class QuietHours:
    """A local time span with no messages, possibly across midnight (21:00 → 08:00)."""

    start: time
    end: time

    def contains(self, moment: datetime, zone: tzinfo) -> bool:
        """Whether the moment falls inside the quiet span, in local time."""
        local = moment.astimezone(zone).time().replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_allowed(self, moment: datetime, zone: tzinfo) -> datetime:
        """The moment itself when allowed, else the end of the quiet span (local), in UTC."""
        if not self.contains(moment, zone):
            return moment
        local = moment.astimezone(zone)
        end = datetime.combine(local.date(), self.end, tzinfo=zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return end.astimezone(UTC)

    def as_list(self) -> list[str]:
        """["21:00", "08:00"], as kept in outbox payloads."""
        return [self.start.strftime("%H:%M"), self.end.strftime("%H:%M")]


def parse_quiet_hours(raw: Sequence[str]) -> QuietHours:
    """Quiet hours as an outbox payload carries them (``QuietHours.as_list``)."""
    start, end = raw
    return QuietHours(_clock(start), _clock(end))


DEFAULT_REMINDER_OFFSETS: tuple[int, ...] = (72, 24, 3)
DEFAULT_QUIET_HOURS = QuietHours(time(21), time(8))
DEFAULT_INTERIM_TIME = time(18)
DEFAULT_SMALL_GROUP_THRESHOLD = 5

_Rate = Annotated[Decimal, Field(ge=0, le=1)]
_Weight = Annotated[Decimal, Field(ge=0)]


def _known_keys(values: Mapping[str, Decimal], known: Mapping[str, Decimal], what: str) -> None:
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)}")


class RoundOptions(BaseModel):
    """A round's options with the defaults filled in; parse with :meth:`from_json`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    targets: dict[str, _Rate] = Field(default_factory=dict)
    weights: dict[str, _Weight] = Field(default_factory=dict)
    good_share: _Rate = DEFAULT_GOOD_SHARE
    poor_share: _Rate = DEFAULT_POOR_SHARE
    reminder_offsets: tuple[PositiveInt, ...] = DEFAULT_REMINDER_OFFSETS
    small_group_threshold: PositiveInt = DEFAULT_SMALL_GROUP_THRESHOLD
    quiet_hours: QuietHours | None = DEFAULT_QUIET_HOURS
    interim_time: time = DEFAULT_INTERIM_TIME
    categories: tuple[Category, ...] | None = None
    kind: RoundKind = RoundKind.ANNUAL
    sample: tuple[int, ...] | None = None
    institution_sheet: InstitutionSheet = DEFAULT_INSTITUTION_SHEET

    @classmethod
    def from_json(cls, raw: Mapping[str, Any] | None) -> RoundOptions:
        """The options of ``Round.options``; raises pydantic's ValidationError (a ValueError)."""
        return cls.model_validate(dict(raw or {}))

    @field_validator("targets")
    @classmethod
    def _target_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        _known_keys(value, DEFAULT_TARGET_RATES, "target rate")
        return value

    @field_validator("weights")
    @classmethod
    def _weight_keys(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        _known_keys(value, DEFAULT_COMPOSITE_WEIGHTS, "composite part")
        return value

    @field_validator("reminder_offsets")
    @classmethod
    def _largest_first(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value:
            raise ValueError("at least one reminder offset")
        return tuple(sorted(set(value), reverse=True))

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _quiet_hours(cls, value: Any) -> QuietHours | None:
        # The writer stores {"start", "end"}, or false for "remind at any hour".
        if value is False or isinstance(value, QuietHours):
            return value or None
        if isinstance(value, Mapping) and set(value) == {"start", "end"}:
            return QuietHours(_clock(value["start"]), _clock(value["end"]))
        raise ValueError('quiet hours are {"start": "HH:MM", "end": "HH:MM"} or false')

    @field_validator("interim_time", mode="before")
    @classmethod
    def _interim_time(cls, value: Any) -> time:
        return value if isinstance(value, time) else _clock(value)

    @field_validator("categories")
    @classmethod
    def _graded_categories(cls, value: tuple[Category, ...] | None) -> tuple[Category, ...] | None:
        if value is not None and not all(in_scope(category, None) for category in value):
            raise ValueError("only graded categories can be in a round's scope")
        if value is not None and not value:
            raise ValueError("at least one category")
        return value

    @property
    def scope(self) -> frozenset[Category] | None:
        """The categories the round grades; a quarterly re-grading grades 两新 only (§11)."""
        if self.kind is RoundKind.QUARTERLY_REGRADE:
            chosen = set(self.categories or REGRADE_CATEGORIES)
            return frozenset(chosen & REGRADE_CATEGORIES)
        return None if self.categories is None else frozenset(self.categories)

    def grades(self, category: Category, org_id: int) -> bool:
        """Whether the round grades this branch: in scope, and sampled when it samples."""
        if not in_scope(category, self.scope):
            return False
        return self.sample is None or org_id in self.sample

    @property
    def composite_weights(self) -> dict[str, Decimal]:
        """Composite weights of the round: the defaults with the round's overrides."""
        return {**DEFAULT_COMPOSITE_WEIGHTS, **self.weights}


def validation_error(error: ValidationError, raw: Mapping[str, Any]) -> OptionError:
    """The first problem of a ValidationError as ``bad_option`` (key and offending value)."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    return OptionError("bad_option", key=key, value=first.get("input", raw))


def check_options(raw: Mapping[str, Any] | None) -> RoundOptions:
    """Parse options about to be stored; problems raise OptionError("bad_option")."""
    try:
        return RoundOptions.from_json(raw)
    except ValidationError as error:
        raise validation_error(error, raw or {}) from None


# --- The command line's KEY=VALUE ---------------------------------------------------------


def _decimal(key: str, text: str, *, at_most_one: bool) -> str:
    """A non-negative decimal (at most 1 for rates), kept as text so JSON stays exact."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise OptionError("bad_option", key=key, value=text) from None
    if not value.is_finite() or value < 0 or (at_most_one and value > 1):
        raise OptionError("bad_option", key=key, value=text)
    return str(value)


def _clock_text(key: str, text: str) -> str:
    """A local time of day HH:MM, normalized to two-digit hours."""
    try:
        return _clock(text).strftime("%H:%M")
    except ValueError:
        raise OptionError("bad_option", key=key, value=text) from None


def _positive_int(key: str, text: str) -> int:
    """A whole number ≥ 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise OptionError("bad_option", key=key, value=text)
    return int(text)


def _hours(key: str, text: str) -> list[int]:
    """Hours before a deadline, e.g. "72,24,2", largest first, no duplicates."""
    parts = [part for part in re.split(r"[,，\s]+", text.strip()) if part]
    if not parts:
        raise OptionError("bad_option", key=key, value=text)
    return sorted({_positive_int(key, part) for part in parts}, reverse=True)


def _set_option(options: dict[str, Any], key: str, text: str) -> None:
    """Validate one KEY=VALUE and store it in its place in the options."""
    group, _, name = key.partition(".")
    if group == "targets" and name in DEFAULT_TARGET_RATES:
        options.setdefault("targets", {})[name] = _decimal(key, text, at_most_one=True)
    elif group == "weights" and name in DEFAULT_COMPOSITE_WEIGHTS:
        options.setdefault("weights", {})[name] = _decimal(key, text, at_most_one=False)
    elif key in ("good_share", "poor_share"):
        options[key] = _decimal(key, text, at_most_one=True)
    elif key == "reminder_offsets":
        options[key] = _hours(key, text)
    elif key == "small_group_threshold":
        options[key] = _positive_int(key, text)
    elif key == "quiet_hours" and text.strip().casefold() in ("off", "none", "无"):
        options[key] = False  # remind at any hour
    elif key == "quiet_hours":
        start, dash, end = text.partition("-")
        if not dash:
            raise OptionError("bad_option", key=key, value=text)
        options[key] = {"start": _clock_text(key, start), "end": _clock_text(key, end)}
    elif key == "interim_time":
        options[key] = _clock_text(key, text)
    elif key == "categories":
        options[key] = parse_categories(text)
    elif key == "institution_sheet":
        if text.strip() not in set(InstitutionSheet):
            raise OptionError("bad_option", key=key, value=text)
        options[key] = text.strip()
    else:
        raise OptionError("unknown_option", key=key)


def parse_categories(text: str) -> list[str]:
    """Categories written "村,社区" (or English values), graded ones only, order kept."""
    found: list[str] = []
    for part in re.split(r"[,，、\s]+", text.strip()):
        if not part:
            continue
        try:
            category = parse_category(part)
        except ValueError:
            raise OptionError("bad_option", key="categories", value=text) from None
        if not in_scope(category, None):
            raise OptionError("bad_option", key="categories", value=text)
        if category.value not in found:
            found.append(category.value)
    if not found:
        raise OptionError("bad_option", key="categories", value=text)
    return found


def parse_option_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """Round options (as JSON to store) from KEY=VALUE strings; problems raise OptionError."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise OptionError("bad_option", key=pair, value="")
        _set_option(options, key.strip(), value)
    check_options(options)
    return options
