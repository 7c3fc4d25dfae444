"""Issue 10: 10,000 random updates against the real Application, on SQLite and PostgreSQL.

Random callback datas, texts, contacts and commands, from registered people of every role
and from strangers, are handed to the running Application (straight into its update
queue, through the fake Bot API harness: real handlers, real database, real Bot API calls
over HTTP for the replies). The run must end with no unhandled exception and with every
table as it was, except the audit log that records the refusals.

Inputs that would legitimately change data are left out on purpose: the organizer's
/remind, /publish and /rectify, a real branch's /members_only, real tokens of people not
yet registered (the branch link among them), and contacts with a roster phone. Everything
else a hostile or careless user could send is in.
"""

from __future__ import annotations

import asyncio
import random
import string
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session, SQLModel, col

from storage.models import AuditLog

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness
    from tests.fakebot import Phone, Reply

# 10,000 updates take two to four minutes on the 2-core machine: past the suite's 120 s.
pytestmark = pytest.mark.timeout(900)

UPDATES = int(__import__("os").environ.get("CEPING_FUZZ_UPDATES", "10000"))
SEED = 20261129
BATCH = 8  # updates in flight at once, each from a different phone

REGISTERED = {  # key of tests.bot_fixtures.PEOPLE -> Telegram user id
    "organizer": 9101,
    "secretary": 9102,
    "member": 9103,
    "inspector": 9104,
    "worker": 9105,
}
STRANGERS = (9201, 9202, 9203)
PRIVILEGED = {"organizer", "secretary", "inspector"}

EVERYONE_COMMANDS = ("start", "help", "surveys", "lang", "cancel", "tally", "coverage", "rank")
SOMETIMES_COMMANDS = ("grades", "veto", "members_only")
HEAVY_COMMANDS = ("export", "chart")  # a workbook or charts each: rarely
CHANGING_COMMANDS = ("remind", "publish", "rectify")  # only from those refused them
CALLBACK_PREFIXES = ("a:", "s:", "l:", "rp:", "lang:", "x:", "", "st:", "a:1:", "rp:g:")
NASTY = [
    '=HYPERLINK("http://x","y")',
    "张\u202e三",
    "\u0000\u0007\u001b[31m",
    "<b>未闭合",
    "&lt;script&gt;",
    "🧨" * 50,
    "\ud7ff\ue000",
    "-1",
    "99999999999999999999",
    "0.5",
    "",
    " ",
    "\n\n\n",
    "说" * 5000,
    "/start",
    "@ceping_test_bot",
    "%s%s%n",
    "'; DROP TABLE person; --",
]


def _text(rng: random.Random) -> str:
    """A random text: a nasty classic, random printable or random Unicode, any length."""
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(NASTY)
    if kind < 0.6:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 80)))
    alphabet = [chr(rng.randint(0x20, 0xD7FF)) for _ in range(rng.randint(1, 40))]
    return "".join(alphabet) or "x"


def _callback(rng: random.Random) -> str:
    """Random callback data, often with a real prefix; at most Telegram's 64 bytes."""
    prefix = rng.choice(CALLBACK_PREFIXES)
    parts = [
        rng.choice(
            [
                str(rng.randint(10**6, 10**9)),
                str(-rng.randint(1, 99)),
                rng.choice("cpndmkbesyx"),
                "".join(rng.choice(string.ascii_letters + ":_-") for _ in range(rng.randint(0, 6))),
            ]
        )
        for _ in range(rng.randint(0, 5))
    ]
    data = prefix + ":".join(parts)
    while len(data.encode()) > 64:
        data = data[:-1]
    return data or "x"


def _command(rng: random.Random, key: str | None, tokens: dict[str, str]) -> str:
    """A command with random arguments that the sender may or may not be allowed."""
    roll = rng.random()
    if roll < 0.02:
        name = rng.choice(HEAVY_COMMANDS)
    elif roll < 0.3:
        name = rng.choice(SOMETIMES_COMMANDS)
    elif roll < 0.4 and key not in PRIVILEGED:
        name = rng.choice(CHANGING_COMMANDS)
    else:
        name = rng.choice(EVERYONE_COMMANDS)
    if name == "start" and rng.random() < 0.5:
        # Forwarded links of people already registered, and made-up tokens.
        token = rng.choice([*tokens.values(), _text(rng).replace(" ", "")[:70] or "x"])
        return f"/start {token}"
    if name == "members_only":
        return f"/members_only 不存在的{_text(rng)[:10]}支部 {_text(rng)}"
    args = " ".join(_text(rng)[:30] for _ in range(rng.randint(0, 3)))
    if name == "coverage" and rng.random() < 0.3:
        args = rng.choice(["红星村党支部", "红星村", "东方机械厂党支部", "青山镇党委"])
    return f"/{name} {args}".rstrip()


def _contact(rng: random.Random, phone: Phone) -> Callable[[], Awaitable[Reply]]:
    """Someone else's card, a number off the roster, or junk; never a roster phone."""
    kind = rng.random()
    if kind < 0.3:
        return lambda: phone.share_contact(
            phone_number="13800000001", user_id=rng.randint(1, 10**9), **_via
        )
    number = rng.choice([f"139{rng.randint(0, 10**8 - 1):08d}", "+44 20 7946 0000", "abc", "1"])
    return lambda: phone.share_contact(phone_number=number, **_via)


_via: dict[str, Any] = {}


def _snapshot(engine: Engine) -> dict[str, list[str]]:
    """Every row of every table but the audit log, as sorted text."""
    with Session(engine) as session:
        return {
            table.name: sorted(repr(tuple(row)) for row in session.execute(select(table)))
            for table in SQLModel.metadata.sorted_tables
            if table.name != "audit_log"
        }


async def test_ten_thousand_random_updates_change_nothing_and_raise_nothing(
    bot: BotHarness,
) -> None:
    phones: dict[int, tuple[Phone, str | None]] = {}
    for key, user_id in REGISTERED.items():
        phones[user_id] = (await bot.register(user_id, key), key)
    for user_id in STRANGERS:
        phones[user_id] = (bot.phone(user_id), None)
    used_tokens = {key: bot.world.tokens[key] for key in REGISTERED}
    before = _snapshot(bot.engine)
    _via.update(via=bot.app, raise_errors=False, timeout=60)
    rng = random.Random(SEED)
    errors: list[BaseException] = []
    sent = answered = 0

    def one(phone: Phone, key: str | None) -> Callable[[], Awaitable[Reply]]:
        roll = rng.random()
        if roll < 0.35:
            text = _command(rng, key, used_tokens)
            return lambda: phone.send(text, **_via)
        if roll < 0.65:
            data, message_id = _callback(rng), rng.choice([None, rng.randint(1, 10**6)])
            if message_id is None and not phone.history:
                message_id = 1
            return lambda: phone.tap(callback_data=data, message_id=message_id, **_via)
        if roll < 0.75:
            return _contact(rng, phone)
        text = _text(rng)
        return lambda: phone.send(text or "x", **_via)

    while sent < UPDATES:
        senders = rng.sample(sorted(phones), k=min(BATCH, len(phones)))
        calls = [one(*phones[user_id]) for user_id in senders]
        replies = await asyncio.gather(*(call() for call in calls))
        errors += [error for reply in replies for error in reply.errors]
        answered += sum(1 for reply in replies if reply.records)
        sent += len(calls)

    assert errors == [], errors[:5]
    assert answered > sent // 2, "most updates got an answer: the fuzz reached the handlers"
    with Session(bot.engine) as session:
        refusals = session.execute(
            select(func.count()).select_from(AuditLog).where(col(AuditLog.outcome) == "refused")
        ).scalar_one()
    assert refusals > 0
    after = _snapshot(bot.engine)
    changed = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    assert changed == {}
