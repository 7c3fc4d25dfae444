"""The bot tallies each open round when it starts, so no organizer meets the cold tally.

Why: a tally reuses what the last one computed for every branch whose rows are unchanged
(storage/tally_memo.py), but the first tally after a start computes the whole county
(about 2.5× the raw-SQL floor, issue 12). The bot now takes that first tally itself, off
any user's path, right after it starts; these tests watch which branches are computed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from bot import warm
from storage import participation, tallies, tally_memo
from storage.db import transaction
from storage.models import Organization, Round
from tests.bot_fixtures import FakeClock, World, started_bot
from tests.factories import cast_ballot

ORGANIZER = 7001


@pytest.fixture
def computed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The org ids whose scores a tally computes (a kept branch is not computed)."""
    seen: list[int] = []
    real = tallies._scores

    def counting(data: Any, org_id: int, weights: Any) -> Any:
        seen.append(org_id)
        return real(data, org_id, weights)

    monkeypatch.setattr(tallies, "_scores", counting)
    with tally_memo.aside():  # an empty memo, as in a process that has just started
        participation.forget_coverage()
        yield seen


def _a_ballot_and_the_branches(engine: Engine, world: World) -> list[int]:
    """One ballot in the village; the branches a tally of the round shows."""
    with transaction(engine) as session:
        round_ = session.get(Round, world.round_id)
        village = session.get(Organization, world.orgs["village"])
        assert round_ is not None and village is not None
        cast_ballot(session, round_, village, "satisfied")
    with Session(engine) as session, tally_memo.aside():
        tally = tallies.round_tally(session, round_id=world.round_id, details=False)
    return sorted(branch.org_id for branch in tally.branches)


async def _start_and_tally(
    engine: Engine, clock: FakeClock, world: World, computed: list[int], *, warm_tallies: bool
) -> tuple[list[int], str]:
    """Start the bot, wait for its start-up tally, then the organizer's first /tally:
    (the branches computed at start, the table's text); ``computed`` then holds the rest."""
    async with started_bot(engine, clock, world, warm_tallies=warm_tallies) as bot:
        await warm.finished(bot.app)
        at_start = sorted(computed)
        computed.clear()
        phone = await bot.register(ORGANIZER, "organizer")
        table = await phone.send("/tally")
    return at_start, table.text


async def test_the_first_tally_after_a_start_computes_no_branch(
    engine: Engine, clock: FakeClock, world: World, computed: list[int]
) -> None:
    branches = _a_ballot_and_the_branches(engine, world)
    computed.clear()
    at_start, table = await _start_and_tally(engine, clock, world, computed, warm_tallies=True)
    assert "村(社区)：" in table, table
    assert world.orgs["village"] in branches
    assert at_start == branches, "the bot did not tally the open round when it started"
    assert computed == [], "the organizer's first /tally recomputed branches"


async def test_without_the_warm_up_the_first_tally_computes_every_branch(
    engine: Engine, clock: FakeClock, world: World, computed: list[int]
) -> None:
    # The other side of the test above: what it would catch.
    branches = _a_ballot_and_the_branches(engine, world)
    computed.clear()
    at_start, _ = await _start_and_tally(engine, clock, world, computed, warm_tallies=False)
    assert at_start == []
    assert sorted(computed) == branches


async def test_a_failing_warm_up_is_logged_and_the_bot_answers_as_before(
    engine: Engine,
    clock: FakeClock,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(tallies, "warm_open_rounds", broken)
    with caplog.at_level(logging.WARNING, logger="bot.warm"):
        async with started_bot(engine, clock, world, warm_tallies=True) as bot:
            await warm.finished(bot.app)
            phone = await bot.register(ORGANIZER, "organizer")
            table = await phone.send("/tally")
    assert "村(社区)：" in table.text, table.text
    assert any("database went away" in r.getMessage() + str(r.exc_info) for r in caplog.records)
