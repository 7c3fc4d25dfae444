"""Scheduled jobs inside `ceping run` or alone as `ceping jobs` (being written)."""

from __future__ import annotations

from telegram.ext import Application


async def start(application: Application) -> None:  # type: ignore[type-arg]
    """Start the scheduler beside the bot (no-op until the jobs land)."""


async def stop(application: Application) -> None:  # type: ignore[type-arg]
    """Stop the scheduler."""
