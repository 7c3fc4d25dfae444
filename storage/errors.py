"""The database's own failures, named for callers outside storage (which import no SQLAlchemy)."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError as DatabaseError

__all__ = ["DatabaseError"]
