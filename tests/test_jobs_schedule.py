"""When reminders and digests are due: the pure time arithmetic of jobs.schedule."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from jobs.schedule import (
    due_interim,
    due_reminder,
    reminder_slots,
)
from surveys.options import QuietHours
from tests.factories import (
    ZONE,
    local,
)

# --- Pure time arithmetic -------------------------------------------------------------------


def test_each_reminder_slot_lasts_until_the_next_one() -> None:
    deadline = local(2027, 3, 20, 20)
    slots = reminder_slots(deadline, [3, 72, 24])
    assert [(s.offset_hours, s.at, s.expires_at) for s in slots] == [
        (72, local(2027, 3, 17, 20), local(2027, 3, 19, 20)),
        (24, local(2027, 3, 19, 20), local(2027, 3, 20, 17)),
        (3, local(2027, 3, 20, 17), deadline),
    ]
    assert slots[0].key == "20270320T1200Z-72h"


def test_each_offset_is_due_once_as_the_clock_moves_minute_by_minute() -> None:
    deadline = local(2027, 3, 20, 20)
    first_due: dict[str, datetime] = {}
    now = local(2027, 3, 16, 0)
    while now < deadline + timedelta(hours=2):
        slot = due_reminder(
            deadline, now, offsets=(72, 24, 3), opens_at=None, quiet=None, zone=ZONE
        )
        if slot is not None:
            first_due.setdefault(slot.key, now)
        now += timedelta(minutes=1)
    assert first_due == {
        "20270320T1200Z-72h": local(2027, 3, 17, 20),
        "20270320T1200Z-24h": local(2027, 3, 19, 20),
        "20270320T1200Z-3h": local(2027, 3, 20, 17),
    }


QUIET = QuietHours(time(21), time(8))


def test_a_slot_in_quiet_hours_waits_until_eight() -> None:
    # Deadline 23:00: the 24-hour reminder falls at 23:00 the day before, inside quiet hours.
    deadline = local(2027, 3, 20, 23)
    at_night = local(2027, 3, 19, 23, 30)
    morning = local(2027, 3, 20, 8)
    assert (
        due_reminder(deadline, at_night, offsets=(24, 3), opens_at=None, quiet=QUIET, zone=ZONE)
        is None
    )
    slot = due_reminder(deadline, morning, offsets=(24, 3), opens_at=None, quiet=QUIET, zone=ZONE)
    assert slot is not None and slot.offset_hours == 24


def test_a_slot_whose_quiet_hours_end_after_the_deadline_is_dropped() -> None:
    # Deadline 02:00: the 3-hour reminder at 23:00 could only go out at 08:00, too late.
    deadline = local(2027, 3, 21, 2)
    now = local(2027, 3, 20, 20)
    due_at = []
    while now < deadline + timedelta(hours=8):
        slot = due_reminder(deadline, now, offsets=(3,), opens_at=None, quiet=QUIET, zone=ZONE)
        if slot is not None:
            due_at.append(now)
        now += timedelta(minutes=10)
    assert due_at == []


def test_quiet_hours_span_midnight() -> None:
    assert QUIET.contains(local(2027, 3, 20, 21), ZONE)
    assert QUIET.contains(local(2027, 3, 21, 7, 59), ZONE)
    assert not QUIET.contains(local(2027, 3, 21, 8), ZONE)
    assert not QUIET.contains(local(2027, 3, 20, 20, 59), ZONE)
    assert QUIET.next_allowed(local(2027, 3, 20, 22), ZONE) == local(2027, 3, 21, 8)
    assert QUIET.next_allowed(local(2027, 3, 21, 3), ZONE) == local(2027, 3, 21, 8)
    assert QUIET.next_allowed(local(2027, 3, 21, 9), ZONE) == local(2027, 3, 21, 9)


def test_the_interim_digest_is_due_once_a_day_from_its_time() -> None:
    def due(now: datetime) -> str | None:
        slot = due_interim(
            now,
            interim_time=time(18),
            opened_at=local(2027, 3, 15, 9),
            last_deadline=local(2027, 3, 20, 20),
            quiet=QUIET,
            zone=ZONE,
        )
        return slot.key if slot else None

    assert due(local(2027, 3, 15, 17, 59)) is None  # the round opened after yesterday's 18:00
    assert due(local(2027, 3, 15, 18)) == "2027-03-15"
    assert due(local(2027, 3, 15, 22)) is None  # quiet hours
    assert due(local(2027, 3, 16, 9)) == "2027-03-15"  # the same slot: enqueued once by its key
    assert due(local(2027, 3, 16, 18, 1)) == "2027-03-16"
    assert due(local(2027, 3, 20, 18)) == "2027-03-20"
    assert due(local(2027, 3, 21, 18)) is None  # after the last deadline
