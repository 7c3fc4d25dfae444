"""How much database work one survey tap costs, and that its screen is drawn after commit.

Counting statements is deterministic (not a timing): a regression that re-reads a row or
adds a round trip per tap shows here, on SQLite and on PostgreSQL alike. The figures the
counts feed (CPU per tap, latency) are printed by bench/meeting.py, not asserted.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.orm import Mapper

from bot import answer_state
from storage.answering import load_step
from storage.db import transaction, with_quick
from storage.models import Assignment, Draft
from storage.responses import update_draft_view
from tests.support_answering import MEMBER, assignment_of, draft_of, registered, start_survey
from tests.support_races import wait_until, waiting_on_a_lock

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness, World


class Statements:
    """The SQL statements an engine sends (BEGIN apart) and its commits, while counting."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.commits = 0
        self._lock = threading.Lock()

    def statement(self, _conn: Any, _cursor: Any, sql: str, *_rest: Any) -> None:
        if sql.strip().upper().startswith("BEGIN"):
            return  # SQLite's BEGIN IMMEDIATE: the transaction itself, counted as a commit
        with self._lock:
            self.sent.append(" ".join(sql.split())[:80])

    def commit(self, *_args: Any) -> None:
        with self._lock:
            self.commits += 1


@contextlib.contextmanager
def counting(engine: Engine) -> Iterator[Statements]:
    """Count what the engine sends inside the block."""
    seen = Statements()
    engines = with_quick(engine)  # a tap's transaction may run on the quick engine
    for each in engines:
        event.listen(each, "before_cursor_execute", seen.statement)
        event.listen(each, "commit", seen.commit)
    try:
        yield seen
    finally:
        for each in engines:
            event.remove(each, "before_cursor_execute", seen.statement)
            event.remove(each, "commit", seen.commit)


def expected_per_answer(engine: Engine) -> int:
    """Load (with the branch's 补测 window joined in) and one UPDATE of the draft. On
    PostgreSQL the load also locks the assignment and draft rows (SQLite holds the write
    lock from BEGIN IMMEDIATE)."""
    return 2


async def test_an_answer_tap_costs_one_read_and_one_write(bot: BotHarness) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    await phone.tap("满意")  # q1: the first answer also marks the assignment in progress
    with counting(bot.engine) as seen:
        reply = await phone.tap("基本满意")  # q2
    assert reply.toast is None
    assert "第 3/9 题" in phone.screen.text
    assert seen.commits == 1, seen.sent
    assert len(seen.sent) == expected_per_answer(bot.engine), seen.sent
    mine = assignment_of(bot.engine, bot.world, "member", "satisfaction")
    draft = draft_of(bot.engine, mine.id)  # type: ignore[arg-type]
    assert draft is not None
    assert draft.answers == {"q1": {"choice": "satisfied"}, "q2": {"choice": "basically_satisfied"}}
    assert draft.position == 2


async def test_a_move_without_an_answer_costs_one_read_and_one_write(bot: BotHarness) -> None:
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    await phone.tap("满意")
    with counting(bot.engine) as seen:
        await phone.tap("⬅️ 上一题")
    assert "第 1/9 题" in phone.screen.text
    assert seen.commits == 1, seen.sent
    assert len(seen.sent) == expected_per_answer(bot.engine), seen.sent


@contextlib.contextmanager
def orm_loads() -> Iterator[list[str]]:
    """The ORM objects built from rows inside the block (any mapped class, any session)."""
    built: list[str] = []

    def loaded(target: Any, _context: Any) -> None:
        built.append(type(target).__name__)

    event.listen(Mapper, "load", loaded)
    try:
        yield built
    finally:
        event.remove(Mapper, "load", loaded)


async def test_a_survey_tap_builds_no_orm_objects(bot: BotHarness) -> None:
    """A tap reads plain columns and writes with Core statements: the identity map, its
    objects and their row processors are work a tap does not need."""
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    await phone.tap("满意")
    with orm_loads() as built:
        await phone.tap("基本满意")  # an answer
        await phone.tap("⬅️ 上一题")  # a move
    assert built == []
    assert "第 2/9 题" in phone.screen.text


async def test_the_next_screen_is_drawn_after_the_taps_transaction_committed(
    bot: BotHarness, monkeypatch: Any
) -> None:
    """Drawing holds no lock: the write lock (SQLite) or row lock (PostgreSQL) is released
    before the next screen's text and buttons are built."""
    phone = await registered(bot, "member", MEMBER)
    await start_survey(phone)
    drawn_after: list[int] = []
    draw = answer_state.render

    with counting(bot.engine) as seen:

        def spy(*args: Any, **kwargs: Any) -> Any:
            drawn_after.append(seen.commits)
            return draw(*args, **kwargs)

        monkeypatch.setattr(answer_state, "render", spy)
        await phone.tap("满意")
    assert drawn_after == [1], drawn_after  # drawn once, after the tap's one commit
    assert "第 2/9 题" in phone.screen.text


# --- A step that waited for another's lock reads what that one wrote ---------------------


def _wait_until_blocked(engine: Engine) -> None:
    """Until the reader waits for the holder's lock. SQLite shows no waiters: there the
    reader waits on BEGIN IMMEDIATE (or starts after the commit); either way it must read
    the holder's writes, which is what the test checks."""
    if engine.dialect.name != "sqlite":
        wait_until(lambda: waiting_on_a_lock(engine))


@pytest.mark.parametrize("meanwhile", ["moved", "submitted"])
def test_a_step_that_waited_for_the_lock_reads_what_the_holder_wrote(
    engine: Engine, world: World, meanwhile: str
) -> None:
    """Two bot processes on one person: the second step's read comes after the first's
    commit, whole — its draft, or its absence after a submission (PostgreSQL READ
    COMMITTED would otherwise show rows as they were when the waiting statement began)."""
    mine = assignment_of(engine, world, "member", "satisfaction")
    assert mine.id is not None
    with transaction(engine) as session:
        update_draft_view(session, assignment_id=mine.id, position=0, stage="question")
    seen: list[tuple[str, int | None]] = []

    def read() -> None:
        with transaction(engine) as session:
            step = load_step(session=session, assignment_id=mine.id)  # type: ignore[arg-type]
            assert step is not None
            revision = step.draft.revision if step.draft is not None else None
            seen.append((step.assignment.status, revision))

    reader = threading.Thread(target=read)
    with transaction(engine) as holder:
        step = load_step(session=holder, assignment_id=mine.id)
        assert step is not None and step.draft is not None
        if meanwhile == "moved":
            update_draft_view(
                holder, assignment_id=mine.id, position=3, expected_revision=step.draft.revision
            )
        else:
            holder.delete(holder.get(Draft, mine.id))
            submitted = holder.get(Assignment, mine.id)
            assert submitted is not None
            submitted.status = "submitted"
        holder.flush()
        reader.start()
        _wait_until_blocked(engine)
    reader.join(30)
    expected = [("pending", 2)] if meanwhile == "moved" else [("submitted", None)]
    assert seen == expected


async def test_an_anonymous_submission_builds_no_orm_objects(bot: BotHarness) -> None:
    """确认提交 drops the sealed ballot into the branch's box with Core statements too (the
    fold, when one is due, is a transaction of its own after the screen)."""
    from tests.test_anonymity import _answer, _seat_voters, _submit

    (voter,) = _seat_voters(bot, 1)
    phone = bot.phone(voter.user_id)
    await _answer(phone, voter)
    with orm_loads() as built:
        await _submit(phone)
    assert built == []
