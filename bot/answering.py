"""Answering instruments one question at a time (being written)."""

from telegram.ext import BaseHandler


def handlers() -> list[BaseHandler]:  # type: ignore[type-arg]
    """The handlers of this module, in the order they must be registered."""
    return []
