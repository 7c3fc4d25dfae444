"""Text against the width of its column, read from the model (issue 10, item 7).

PostgreSQL refuses a 600-character note in a ``VARCHAR(500)`` column
(StringDataRightTruncation) while SQLite stores it, so the same input behaved differently
on the two engines. One guard now runs before every flush, on both: any string longer than
its column raises :class:`TextTooLong` before SQL is sent, and the caller's transaction
rolls back, so nothing is written. The bot turns that into a catalog message
(``bot.common.in_transaction``). Widths are read from the columns, never repeated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, TypeDecorator, event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import UOWTransaction

from surveys.instruments import Instrument


class TextTooLong(ValueError):
    """A text longer than its column allows."""

    def __init__(self, table: str, column: str, limit: int, length: int) -> None:
        super().__init__(f"{table}.{column}: {length} characters, at most {limit}")
        self.table, self.column, self.limit, self.length = table, column, limit, length


def _width(column: Any) -> int | None:
    """The width of a string column (SQLModel wraps String in AutoString); None otherwise."""
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    return kind.length if isinstance(kind, String) else None


def column_width(model: Any, name: str) -> int | None:
    """The width of a model's string column (``Answer.reason`` → 500); None if unbounded."""
    return _width(model.__table__.c[name])


def check_text(model: Any, name: str, text: str | None) -> None:
    """Raise TextTooLong when ``text`` does not fit ``model.name``."""
    limit = column_width(model, name)
    if text is not None and limit is not None and len(text) > limit:
        raise TextTooLong(model.__table__.name, name, limit, len(text))


def _check_instance(instance: Any) -> None:
    """Every bounded string attribute of one new or changed row."""
    mapper = inspect(instance).mapper
    for column in mapper.columns:
        limit = _width(column)
        if limit is None:
            continue
        value = getattr(instance, mapper.get_property_by_column(column).key, None)
        if isinstance(value, str) and len(value) > limit:
            raise TextTooLong(column.table.name, column.name, limit, len(value))


@event.listens_for(OrmSession, "before_flush")
def _guard_widths(session: OrmSession, _context: UOWTransaction, _instances: Any) -> None:
    for instance in [*session.new, *session.dirty]:
        _check_instance(instance)


def instrument_width_problems(instrument: Instrument) -> list[str]:
    """Items whose ``max_length`` exceeds the column their answers are stored in.

    A typed answer is checked against ``max_length`` (surveys.instruments), so that limit
    must fit the column: text answers go to ``Answer.text``, deduction reasons to
    ``Answer.reason``.
    """
    from storage.models import Answer  # here: models imports this module at its end

    widths = {"text": column_width(Answer, "text"), "deduction": column_width(Answer, "reason")}
    problems = []
    for item in instrument.items:
        limit = widths.get(item.kind)
        if limit is not None and item.max_length > limit:
            problems.append(f"{item.id}: max_length {item.max_length} > {limit}")
    return problems
