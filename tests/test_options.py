"""Round options: one typed reader of what ``ceping round create --option`` writes."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

import pytest

from surveys.options import (
    DEFAULT_QUIET_HOURS,
    OptionError,
    QuietHours,
    RoundOptions,
    check_options,
    parse_option_pairs,
)
from surveys.rules import DEFAULT_COMPOSITE_WEIGHTS


def test_absent_options_take_the_documented_defaults() -> None:
    options = RoundOptions.from_json(None)
    assert options.reminder_offsets == (72, 24, 3)
    assert options.quiet_hours == DEFAULT_QUIET_HOURS == QuietHours(time(21), time(8))
    assert options.interim_time == time(18)
    assert options.small_group_threshold == 5
    assert (options.good_share, options.poor_share) == (Decimal("0.2"), Decimal("0.1"))
    assert options.targets == {}
    assert options.composite_weights == dict(DEFAULT_COMPOSITE_WEIGHTS)


def test_what_the_command_line_writes_reads_back_typed() -> None:
    stored = parse_option_pairs(
        [
            "targets.members=0.9",
            "weights.satisfaction=0.5",
            "good_share=0.25",
            "reminder_offsets=2,48",
            "small_group_threshold=3",
            "quiet_hours=22:00-7:30",
            "interim_time=12:00",
        ]
    )
    options = RoundOptions.from_json(stored)
    assert options.targets == {"members": Decimal("0.9")}
    assert options.composite_weights["satisfaction"] == Decimal("0.5")
    assert options.composite_weights["inspection"] == Decimal("0.3")
    assert options.good_share == Decimal("0.25")
    assert options.reminder_offsets == (48, 2)
    assert options.small_group_threshold == 3
    assert options.quiet_hours == QuietHours(time(22), time(7, 30))
    assert options.interim_time == time(12)
    assert RoundOptions.from_json(parse_option_pairs(["quiet_hours=off"])).quiet_hours is None


@pytest.mark.parametrize(
    "raw",
    [
        {"reminder_offsets_hours": [2, 48]},  # a spelling the writer never produces
        {"quiet_hours": ["22:00", "07:30"]},
        {"quiet_hours": "22:00-07:30"},
        {"quiet_hours": {}},
        {"quiet_hours": {"start": "25:00", "end": "08:00"}},
        {"interim_time": "18h"},
        {"targets": {"memebrs": "0.9"}},
        {"targets": {"members": "1.5"}},
        {"weights": {"satisfaction": "-0.1"}},
        {"weights": {"interview": "0.1"}},
        {"good_share": "abc"},
        {"small_group_threshold": 0},
        {"reminder_offsets": []},
    ],
)
def test_unknown_keys_and_malformed_values_are_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RoundOptions.from_json(raw)
    with pytest.raises(OptionError) as refused:
        check_options(raw)
    assert refused.value.code == "bad_option"
    assert str(refused.value.params["key"]).split(".")[0] in raw


def test_quiet_hours_span_midnight_and_end_at_their_end() -> None:
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Shanghai")
    late = datetime(2027, 3, 16, 23, 30, tzinfo=zone).astimezone(UTC)
    assert DEFAULT_QUIET_HOURS.contains(late, zone)
    assert DEFAULT_QUIET_HOURS.next_allowed(late, zone) == datetime(
        2027, 3, 17, 8, tzinfo=zone
    ).astimezone(UTC)
    noon = datetime(2027, 3, 16, 12, tzinfo=zone).astimezone(UTC)
    assert not DEFAULT_QUIET_HOURS.contains(noon, zone)
