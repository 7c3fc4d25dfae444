"""When reminders and digests fall due: pure time arithmetic (no database, no Telegram).

What the planner enqueues for the slots due now is ``jobs.planner``.

Reminders are data (like RapidPro's campaign events): "N hours before a phase deadline"
and "daily at HH:MM local while the round is open". The planner is asked "given now,
which slots are due?" every minute; a slot is identified by its nominal time, never by
the tick that noticed it, so after downtime a missed slot is due once, not once per tick.

Rules:

* A reminder slot at ``deadline − offset`` is due from its time until the next smaller
  offset's slot (or the deadline): after downtime only the latest missed reminder of a
  deadline goes out, and nothing is sent once the deadline has passed.
* Nothing is due during quiet hours (local time); a slot that falls there becomes due when
  they end, provided it has not expired by then (a 3 h reminder at 23:00 for a 02:00
  deadline is therefore dropped).
* The interim digest of a day is due from ``interim_time`` until the next day's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from surveys.options import QuietHours


def is_quiet(moment: datetime, quiet: QuietHours | None, zone: tzinfo) -> bool:
    """Whether nothing may be sent at this moment."""
    return quiet is not None and quiet.contains(moment, zone)


def next_allowed(moment: datetime, quiet: QuietHours | None, zone: tzinfo) -> datetime:
    """The first moment at or after ``moment`` outside the quiet hours."""
    return moment if quiet is None else quiet.next_allowed(moment, zone)


# --- Reminder slots before deadlines -------------------------------------------------------


@dataclass(frozen=True)
class ReminderSlot:
    """The reminder ``offset_hours`` before ``deadline``: due from ``at`` until ``expires_at``."""

    deadline: datetime
    offset_hours: int
    at: datetime
    expires_at: datetime

    @property
    def key(self) -> str:
        """Stable text for dedup keys: the deadline in UTC and the offset."""
        return f"{slot_stamp(self.deadline)}-{self.offset_hours}h"


def slot_stamp(moment: datetime) -> str:
    """A compact UTC stamp, 20270320T0800Z."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def reminder_slots(deadline: datetime, offsets: Iterable[int]) -> list[ReminderSlot]:
    """Every reminder slot of one deadline, largest offset first, each expiring at the next."""
    ordered = sorted({int(h) for h in offsets if int(h) > 0}, reverse=True)
    times = [deadline - timedelta(hours=h) for h in ordered]
    ends = [*times[1:], deadline]
    return [
        ReminderSlot(deadline, hours, at, end)
        for hours, at, end in zip(ordered, times, ends, strict=True)
    ]


def due_reminder(
    deadline: datetime,
    now: datetime,
    *,
    offsets: Iterable[int],
    opens_at: datetime | None,
    quiet: QuietHours | None,
    zone: tzinfo,
) -> ReminderSlot | None:
    """The reminder slot of this deadline due now, if any (at most one is due at a time)."""
    if now >= deadline or is_quiet(now, quiet, zone):
        return None
    for slot in reminder_slots(deadline, offsets):
        if opens_at is not None and slot.at < opens_at:
            continue  # the phase was not open yet at the slot's time: no such reminder
        if slot.at <= now < slot.expires_at:
            return slot
    return None


# --- Daily interim digests -----------------------------------------------------------------


@dataclass(frozen=True)
class InterimSlot:
    """The interim digest of one local day: due from ``at`` until ``expires_at``."""

    day: date
    at: datetime
    expires_at: datetime

    @property
    def key(self) -> str:
        """The local date, 2027-03-18."""
        return self.day.isoformat()


def due_interim(
    now: datetime,
    *,
    interim_time: time | None,
    opened_at: datetime | None,
    last_deadline: datetime | None,
    quiet: QuietHours | None,
    zone: tzinfo,
) -> InterimSlot | None:
    """Today's (or, before today's time, yesterday's) interim digest if it is due now."""
    if interim_time is None or is_quiet(now, quiet, zone):
        return None
    local = now.astimezone(zone)
    day = local.date()
    at = datetime.combine(day, interim_time, tzinfo=zone).astimezone(UTC)
    if at > now:
        day -= timedelta(days=1)
        at = datetime.combine(day, interim_time, tzinfo=zone).astimezone(UTC)
    expires = datetime.combine(day + timedelta(days=1), interim_time, tzinfo=zone).astimezone(UTC)
    if opened_at is not None and at < opened_at:
        return None
    if last_deadline is not None and at >= last_deadline:
        return None
    return InterimSlot(day, at, expires)
