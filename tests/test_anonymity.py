"""The adversary of issue 8: someone who reads the whole database and the logs.

Each test plays one attack against the satisfaction survey through the real Application
(SQLite or PostgreSQL, whichever the suite runs on): seven people of one branch answer
with distinct ballots and suggestions (six submit, one leaves a draft), a secretary runs
every report command they like, an organizer closes the round. Each attack must recover
nothing about any one person's choices or suggestion.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy import select as sa_select
from sqlmodel import Session

from storage.db import transaction
from storage.models import Person, PersonRole, SatisfactionComments, TelegramAccount
from storage.rounds import close_round, sync_assignments
from storage.summary import SUM_COLUMNS
from storage.tallies import satisfaction_by_branch
from surveys.instruments import get_instrument
from tests.test_tally_summary import assert_summaries_match

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness
    from tests.fakebot import Phone

THRESHOLD = 5  # the small-group threshold (RoundOptions default)
SECRETARY = 1002
INSTRUMENT = get_instrument("satisfaction")
CHOICE_ITEMS = [item for item in INSTRUMENT.items if item.kind == "choice"]
LABELS = {
    (item.id, option.id): option.text.get("zh_CN")
    for item in CHOICE_ITEMS
    for option in item.options
}
COUNTER_TABLES = ("satisfaction_tally", "satisfaction_ballots", "satisfaction_comments")


@dataclass(frozen=True)
class Voter:
    key: str
    person_id: int
    assignment_id: int
    user_id: int
    ballot: dict[str, str]  # item id -> option id
    suggestion: str

    @property
    def marker(self) -> str:
        """The ASCII tail of the suggestion: still readable where JSON escapes the Chinese."""
        return self.suggestion[self.suggestion.index("XQZ") :]


def _ballot(index: int) -> dict[str, str]:
    """Distinct per voter; never every item's first nor every item's last option."""
    ballot = {}
    for position, item in enumerate(CHOICE_ITEMS):
        options = [option.id for option in item.options]
        ballot[item.id] = options[(index + position) % len(options)]
    return ballot


def _seat_voters(bot: BotHarness, count: int) -> list[Voter]:
    """count members of the village branch, bound to Telegram, with their assignments."""
    world = bot.world
    village = world.orgs["village"]
    with transaction(bot.engine) as session:
        people = []
        for index in range(count):
            person = Person(name=f"投票人{index}", phone=f"1390000{index:04d}", org_id=village)
            session.add(person)
            session.flush()
            assert person.id is not None
            session.add(PersonRole(person_id=person.id, org_id=village, role="member"))
            session.add(
                TelegramAccount(
                    person_id=person.id,
                    telegram_user_id=3000 + index,
                    chat_id=3000 + index,
                    bound_via="invitation",
                )
            )
            people.append(person.id)
        session.flush()
        sync_assignments(session, world.round_id)
    voters = []
    with Session(bot.engine) as session:
        for index, person_id in enumerate(people):
            assignment_id = session.exec(
                text(
                    "SELECT id FROM assignment"
                    " WHERE person_id = :p AND instrument_id = 'satisfaction'"
                ).bindparams(p=person_id)  # type: ignore[call-overload]
            ).scalar_one()
            voters.append(
                Voter(
                    key=f"voter{index}",
                    person_id=person_id,
                    assignment_id=assignment_id,
                    user_id=3000 + index,
                    ballot=_ballot(index),
                    suggestion=f"建议{index}号XQZ{index * 7919:05d}",
                )
            )
    return voters


async def _answer(phone: Phone, voter: Voter) -> None:
    """Start the survey, tap every choice, type the suggestion: up to the review screen."""
    await phone.send("/surveys")
    await phone.tap(next(b for b in phone.buttons if "满意度" in b))
    for item in CHOICE_ITEMS:
        await phone.tap(LABELS[(item.id, voter.ballot[item.id])])
    review = await phone.send(voter.suggestion)
    assert "请核对您的回答" in review.text, review.texts


async def _submit(phone: Phone) -> None:
    await phone.tap("📨 提交")
    thanks = await phone.tap("✅ 确认提交")
    assert "提交成功" in thanks.text, thanks.texts


async def _vote(bot: BotHarness, voter: Voter) -> None:
    phone = bot.phone(voter.user_id)
    await _answer(phone, voter)
    await _submit(phone)


def _close(bot: BotHarness) -> None:
    """The organizer closes the round (what `ceping round close` does)."""
    with transaction(bot.engine) as session:
        close_round(session, round_id=bot.world.round_id, now=bot.clock.now)


def _recovered(guess: dict[str, str], voters: list[Voter]) -> list[str]:
    """Voters whose ballot the guess reproduces on every choice item."""
    return [v.key for v in voters if guess and all(guess.get(i) == o for i, o in v.ballot.items())]


@pytest.fixture
async def meeting(bot: BotHarness) -> tuple[BotHarness, list[Voter]]:
    """Seven voters seated; the first six will submit, the seventh only drafts."""
    return bot, _seat_voters(bot, 7)


# --- 1. PostgreSQL transaction ids ----------------------------------------------------------


def _person_tables(engine: Engine) -> list[str]:
    """Every table with a row that names a person (directly, or through its assignment)."""
    metadata = MetaData()
    metadata.reflect(engine)
    return [
        table.name
        for table in metadata.sorted_tables
        if table.name in ("person", "assignment")
        or any(c.name.endswith("person_id") or c.name == "assignment_id" for c in table.columns)
    ]


def _xmin_links(engine: Engine) -> list[tuple[str, str, int]]:
    """(counter table, person table, rows) whose writing transaction is the same."""
    links = []
    with engine.connect() as connection:
        for counters in COUNTER_TABLES:
            for people in _person_tables(engine):
                rows = connection.execute(
                    text(
                        f'SELECT count(*) FROM "{counters}" c JOIN "{people}" p '
                        "ON c.xmin::text = p.xmin::text"
                    )
                ).scalar_one()
                if rows:
                    links.append((counters, people, rows))
    return links


async def test_no_transaction_id_joins_a_person_to_the_counters(
    meeting: tuple[BotHarness, list[Voter]], backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("xmin is a PostgreSQL system column")
    bot, voters = meeting
    for voter in voters[:6]:
        await _vote(bot, voter)
    assert _xmin_links(bot.engine) == []
    _close(bot)
    assert _xmin_links(bot.engine) == []


# --- 2. Row order ---------------------------------------------------------------------------


def _order_guesses(engine: Engine, backend: str) -> tuple[dict[str, str], dict[str, str]]:
    """Per item, the option of the first and of the last counter row in physical order."""
    order = "ctid" if backend == "postgresql" else "rowid"
    with engine.connect() as connection:
        rows = connection.execute(
            text(f"SELECT item_id, option_id FROM satisfaction_tally ORDER BY {order}")
        ).all()
    first: dict[str, str] = {}
    last: dict[str, str] = {}
    for item_id, option_id in rows:
        first.setdefault(item_id, option_id)
        last[item_id] = option_id
    return first, last


async def test_the_order_of_the_counter_rows_tells_no_ballot(
    meeting: tuple[BotHarness, list[Voter]], backend: str
) -> None:
    bot, voters = meeting
    for voter in voters[:6]:
        await _vote(bot, voter)
    for guess in _order_guesses(bot.engine, backend):
        assert _recovered(guess, voters[:6]) == []
    _close(bot)
    for guess in _order_guesses(bot.engine, backend):
        assert _recovered(guess, voters[:6]) == []
    assert_every_ballot_counted(bot.engine, voters[:6])


def assert_every_ballot_counted(engine: Engine, voters: list[Voter]) -> None:
    """Closed: the counters hold exactly the submitted ballots and suggestions, no more."""
    expected = Counter((i, o) for voter in voters for i, o in voter.ballot.items())
    with engine.connect() as connection:
        counted = {
            (item_id, option_id): n
            for item_id, option_id, n in connection.execute(
                text("SELECT item_id, option_id, count FROM satisfaction_tally WHERE count > 0")
            )
        }
        ballots = connection.execute(text("SELECT sum(ballots) FROM satisfaction_ballots"))
        assert ballots.scalar_one() == len(voters)
        boxes = connection.execute(text("SELECT count(*) FROM satisfaction_box"))
        assert boxes.scalar_one() == 0  # purged on close
    assert counted == dict(expected)
    with Session(engine) as session:
        comments = session.exec(sa_select(SatisfactionComments)).scalars().one().comments
    assert sorted(comments) == sorted(voter.suggestion for voter in voters)


# --- 3. Drafts ------------------------------------------------------------------------------


def _rows_naming(engine: Engine, voter: Voter) -> Iterator[tuple[str, str]]:
    """(table, the row's values as text) of every row that names the voter."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            columns = [c.name for c in table.columns]
            for row in connection.execute(sa_select(table)).mappings():
                names = any(
                    row[c] == voter.person_id for c in columns if c.endswith("person_id")
                ) or ("assignment_id" in columns and row["assignment_id"] == voter.assignment_id)
                if table.name == "assignment" and row["id"] == voter.assignment_id:
                    names = True
                if table.name == "person" and row["id"] == voter.person_id:
                    names = True
                if names:
                    yield table.name, " ".join(str(value) for value in row.values())


def _at_rest(engine: Engine, backend: str) -> bytes:
    """The bytes an adversary copies: the SQLite file and its WAL, or the heap files on disk."""
    if backend == "sqlite":
        path = Path(str(engine.url.database))
        return b"".join(
            p.read_bytes()
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal"))
            if p.exists()
        )
    chunks = []
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("CHECKPOINT"))
        tables = connection.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        for table in list(tables):
            chunks.append(
                connection.execute(
                    text("SELECT pg_read_binary_file(pg_relation_filepath(:t))"), {"t": table}
                ).scalar_one()
                or b""
            )
    return b"".join(bytes(chunk) for chunk in chunks)


def _draft_shaped(data: bytes, unsent: Voter | None = None) -> list[str]:
    """Answers in the shape a draft keeps them (JSON by item), or an unsent suggestion."""
    patterns = [b'"choice"', b'"text"']
    if unsent is not None:
        patterns += [unsent.suggestion.encode(), unsent.marker.encode()]
    return [pattern.decode() for pattern in patterns if pattern in data]


async def test_an_unsubmitted_draft_names_nobody_after_the_round_closes(
    meeting: tuple[BotHarness, list[Voter]], backend: str
) -> None:
    bot, voters = meeting
    for voter in voters[:6]:
        await _vote(bot, voter)
    await _answer(bot.phone(voters[6].user_id), voters[6])  # never submitted
    _close(bot)
    for voter in voters:
        secrets = [voter.suggestion, voter.marker, *voter.ballot.values()]
        for table, row in _rows_naming(bot.engine, voter):
            assert not [s for s in secrets if s in row], f"{table}: {row}"
    assert _draft_shaped(_at_rest(bot.engine, backend), voters[6]) == []


async def test_submitted_drafts_leave_no_answers_in_the_files(
    meeting: tuple[BotHarness, list[Voter]], backend: str
) -> None:
    bot, voters = meeting
    for voter in voters[:6]:
        await _vote(bot, voter)
    _close(bot)
    assert _draft_shaped(_at_rest(bot.engine, backend)) == []  # WAL / dead tuples included
    if backend == "sqlite":
        bot.engine.dispose()  # the last connection checkpoints the WAL into the file
        assert _draft_shaped(_at_rest(bot.engine, backend)) == []


# --- 4. Logs --------------------------------------------------------------------------------


_FAIL_DRAFT = {
    "sqlite": [
        "CREATE TRIGGER anonymity_fail BEFORE UPDATE ON draft "
        "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION anonymity_fail() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'forced failure'; END $$",
        "CREATE TRIGGER anonymity_fail BEFORE UPDATE ON draft "
        "FOR EACH ROW EXECUTE FUNCTION anonymity_fail()",
    ],
}
_UNFAIL_DRAFT = {
    "sqlite": ["DROP TRIGGER anonymity_fail"],
    "postgresql": ["DROP TRIGGER anonymity_fail ON draft", "DROP FUNCTION anonymity_fail()"],
}


def _run_sql(engine: Engine, statements: list[str]) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)


async def test_a_failing_statement_logs_no_answers(
    meeting: tuple[BotHarness, list[Voter]], backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    bot, voters = meeting
    voter = voters[0]
    phone = bot.phone(voter.user_id)
    await phone.send("/surveys")
    await phone.tap(next(b for b in phone.buttons if "满意度" in b))
    for item in CHOICE_ITEMS:
        await phone.tap(LABELS[(item.id, voter.ballot[item.id])])
    _run_sql(bot.engine, _FAIL_DRAFT[backend])
    try:
        with caplog.at_level(logging.INFO):
            # Saving it fails: the error is logged.
            await phone.send(voter.suggestion, raise_errors=False)
    finally:
        _run_sql(bot.engine, _UNFAIL_DRAFT[backend])
    assert "forced failure" in caplog.text  # the failure was logged…
    secrets = (voter.suggestion, voter.marker, '"choice"', *voter.ballot.values())
    leaked = [s for s in secrets if s in caplog.text]
    assert leaked == []  # …without the answers


# --- 5. Differencing by command -------------------------------------------------------------

_DISTRIBUTION = re.compile(r"^(Q\d+) [^：]*：(.*)$")


def _distribution(published: str) -> dict[str, dict[str, int]]:
    """The per-option counts /publish shows, by item (empty while they are withheld)."""
    shown: dict[str, dict[str, int]] = {}
    for line in published.splitlines():
        match = _DISTRIBUTION.match(line.strip())
        if match is None:
            continue
        counts = {}
        for part in match.group(2).split("、"):
            label, _, number = part.rpartition(" ")
            counts[label] = int(number)
        shown[match.group(1).lower()] = counts
    return shown


def _rates(published: str) -> list[str]:
    """The lines with the three rates and the score (anything with a per cent sign)."""
    return [line for line in published.splitlines() if "%" in line or "得分" in line]


def _difference(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> tuple[int, dict[str, str]]:
    """How many ballots the change shows, and the ballot it names when it is exactly one."""
    steps = set()
    guess = {}
    by_label = {(item, label): option for (item, option), label in LABELS.items()}
    for item_id, counts in after.items():
        old = before.get(item_id, {})
        delta = {label: n - old.get(label, 0) for label, n in counts.items()}
        steps.add(sum(delta.values()))
        grown = [label for label, n in delta.items() if n > 0]
        if len(grown) == 1:
            guess[item_id] = by_label[(item_id, grown[0])]
    step = max(steps, default=0)
    return step, guess if step == 1 else {}


def _stored_distribution(bot: BotHarness) -> dict[str, dict[str, int]]:
    """The counts the jobs' digests (outbox rows) would be written from, as labels."""
    with Session(bot.engine) as session:
        summaries = satisfaction_by_branch(
            session, round_id=bot.world.round_id, threshold=THRESHOLD
        )
    summary, _ = summaries.get(bot.world.orgs["village"], (None, 0))
    if summary is None:
        return {}
    return {
        item_id: {LABELS[(item_id, option)]: n for option, n in counts.items()}
        for item_id, counts in summary.distribution.items()
    }


async def test_a_secretary_looking_before_and_after_one_person_learns_nothing(
    meeting: tuple[BotHarness, list[Voter]],
) -> None:
    bot, voters = meeting
    from tests.test_bot_answering import bind

    bind(bot.engine, bot.world, "secretary", SECRETARY)
    secretary = bot.phone(SECRETARY)

    async def look() -> tuple[dict[str, dict[str, int]], list[str], dict[str, dict[str, int]]]:
        published = (await secretary.send("/publish 红星村")).text
        await secretary.send("/tally 红星村")
        await secretary.send("/coverage 红星村")  # stays as it is: who has not answered
        return _distribution(published), _rates(published), _stored_distribution(bot)

    before = await look()
    for voter in voters[:6]:
        await _vote(bot, voter)
        after = await look()
        for old, new in ((before[0], after[0]), (before[2], after[2])):
            step, guess = _difference(old, new)
            assert step == 0 or step >= THRESHOLD, f"{voter.key}: moved by {step}"
            assert _recovered(guess, [voter]) == []
        if before[0] == after[0]:
            assert before[1] == after[1]  # the rates move only with the counts
        before = after


# --- 6. The per-branch summary (issue 12) -----------------------------------------------------


def _summary_rows(engine: Engine) -> list[tuple[object, ...]]:
    columns = ", ".join(("org_id", "ballots", *SUM_COLUMNS))
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(text(f"SELECT {columns} FROM satisfaction_ballots"))
        ]


async def test_the_summary_moves_only_in_a_fold_and_names_nobody(
    meeting: tuple[BotHarness, list[Voter]],
) -> None:
    """The sums a tally reads sit beside the counters: written by the fold, never by a voter.

    Six ballots stay in the box (fewer than twice the threshold): no summary yet, so looking at
    it before and after a voter shows nothing. The round closes: the fold sums them, exactly
    as the counters say; the named-response summary never holds the anonymous survey. (The
    xmin attack above covers ``satisfaction_ballots``, summary columns included.)
    """
    bot, voters = meeting
    for voter in voters[:6]:
        await _vote(bot, voter)
        assert _summary_rows(bot.engine) == []
    _close(bot)
    assert_summaries_match(bot.engine, bot.world.round_id)
    ((_, ballots, *sums),) = _summary_rows(bot.engine)
    assert ballots == 6 and sums[1] == 6 * 5  # five satisfaction questions per ballot
    inspector = inspect(bot.engine)
    for table in ("satisfaction_ballots", "response_summary"):
        for column in inspector.get_columns(table):
            assert "person" not in column["name"] and not column["name"].endswith("_at")
        assert {fk["referred_table"] for fk in inspector.get_foreign_keys(table)} <= {
            "round",
            "organization",
        }
    with bot.engine.connect() as connection:
        anonymous = connection.execute(
            text("SELECT count(*) FROM response_summary WHERE instrument_id = 'satisfaction'")
        )
        assert anonymous.scalar_one() == 0


def test_the_ballot_labels_are_unambiguous() -> None:
    """The differencing attack maps labels back to options: one label, one option per item."""
    for item in CHOICE_ITEMS:
        labels = [LABELS[(item.id, option.id)] for option in item.options]
        assert len(set(labels)) == len(labels)
