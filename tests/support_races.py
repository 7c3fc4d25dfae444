"""Two transactions at once on PostgreSQL: wait until the second queues behind the first."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine


def waiting_on_a_lock(engine: Engine) -> bool:
    """Some connection to this test's database waits for a lock."""
    with engine.connect() as connection:
        waiting = connection.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).scalar_one()
    return bool(waiting)


def wait_until(condition: Callable[[], object], limit: float = 30.0) -> None:
    """Poll a condition (a bounded wait for another thread's state, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the other transaction never got that far"
        time.sleep(0.02)
