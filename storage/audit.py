"""The one writer of the audit log: who did what, to what, with which outcome, and when.

The caller passes ``at`` from its injected clock, so a row follows the same time as the
step that wrote it (tests move the clock instead of sleeping).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.db import Session
from storage.models import AuditLog


def record(
    *,
    session: Session,
    action: str,
    at: datetime,
    actor_person_id: int | None = None,
    actor_telegram_id: int | None = None,
    target: str | None = None,
    outcome: str = "ok",
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an audit row to the caller's transaction ('ok', 'refused' or 'error')."""
    row = AuditLog(
        at=at,
        actor_person_id=actor_person_id,
        actor_telegram_id=actor_telegram_id,
        action=action,
        target=target,
        outcome=outcome,
        detail=detail or {},
    )
    session.add(row)
    return row
