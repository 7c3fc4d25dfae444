"""pytest fixtures for the fake Bot API (pytest_plugins = ["tests.fakebot.fixtures"])."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakebot.server import FakeBotApi


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    """A started FakeBotApi on 127.0.0.1 (free port), stopped after the test."""
    async with FakeBotApi() as api:
        yield api
