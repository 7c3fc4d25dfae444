"""The real bot against the fake Bot API and the test database, with a small township.

Use in a test module::

    pytest_plugins = ["tests.bot_fixtures"]

    async def test_something(bot: BotHarness) -> None:
        phone = bot.phone(1001)
        reply = await phone.send(f"/start {bot.world.tokens['member']}")

Import BotHarness only under ``TYPE_CHECKING`` so pytest can still rewrite this module's
asserts when it loads it as a plugin.

Fixtures: ``clock`` (a :class:`FakeClock` the bot reads; move it, never sleep), ``world``
(the seeded roster, open round and invitations: a :class:`World`) and ``bot`` (the running
Application: a :class:`BotHarness`). ``await bot.register(user_id, key)`` binds a phone to
a person of the world through their personal link, for stories that start after registration.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from telegram.ext import Application

from bot.app import build_application
from storage.db import transaction
from storage.models import Organization, Person, PersonRole
from storage.rounds import create_branch_link, create_invitation, create_round, open_round
from storage.settings import Settings
from surveys.categories import Phase, Role
from tests.fakebot import FakeBotApi, Phone, Reply, running_bot

START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, a Monday
INVITATION_DAYS = 7

# key: (name, phone, organization key, roles)
PEOPLE: dict[str, tuple[str, str, str, tuple[Role, ...]]] = {
    "organizer": ("王组织", "13800000001", "committee", (Role.ORGANIZER,)),
    "secretary": (
        "李书记",
        "13800000002",
        "village",
        (Role.SECRETARY, Role.MEMBER, Role.COMMITTEE),
    ),
    "member": ("张党员", "13800000003", "village", (Role.MEMBER,)),
    "member2": ("赵党员", "13800000004", "village", (Role.MEMBER,)),
    "inspector": ("陈检查", "13800000005", "committee", (Role.INSPECTOR,)),
    "worker": ("孙党员", "13800000006", "enterprise", (Role.MEMBER,)),
}


class FakeClock:
    """A clock the bot reads instead of the wall clock; tests move it forward."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move time forward (days=, hours=, minutes=…) and return the new now."""
        self.now += timedelta(**delta)
        return self.now


@dataclass
class World:
    """What the seed created: ids by key, roster phones and invitation tokens."""

    round_id: int
    orgs: dict[str, int]  # committee, village (红星村, 2 representatives), enterprise
    people: dict[str, int]  # person id by key of PEOPLE
    phones: dict[str, str]  # roster phone by key of PEOPLE
    tokens: dict[str, str]  # personal invitation token by key of PEOPLE
    branch_token: str  # the village's branch link for mass representatives
    names: dict[str, str] = field(default_factory=dict)  # person name by key


@dataclass
class BotHarness:
    """The running bot with everything a story needs."""

    api: FakeBotApi
    app: Application[Any, Any, Any, Any, Any, Any]
    engine: Engine
    clock: FakeClock
    world: World
    settings: Settings

    def phone(self, user_id: int, *, language_code: str = "zh-hans", name: str = "用户") -> Phone:
        """A Telegram user (their own number is derived from the user id)."""
        return self.api.user(user_id, first_name=name, language_code=language_code)

    def session(self) -> Session:
        """A session on the test database for assertions."""
        return Session(self.engine)

    async def register(self, user_id: int, key: str) -> Phone:
        """A phone already registered as PEOPLE[key] through their personal link.

        组织员, 工作组 and 书记 then share their contact with the roster phone, as the bot
        asks them to (surveys.privileges).
        """
        phone = self.phone(user_id)
        reply: Reply = await phone.send(f"/start {self.world.tokens[key]}")
        if set(PEOPLE[key][3]) & {Role.ORGANIZER, Role.INSPECTOR, Role.SECRETARY}:
            phone.phone_number = self.world.phones[key]
            reply = await phone.share_contact()
        assert self.world.names[key] in reply.text, reply.texts
        return phone


def seed_world(engine: Engine, now: datetime) -> World:
    """A township committee, a village branch and an enterprise branch, an open round."""
    with transaction(engine) as session:
        orgs = _seed_orgs(session)
        people = _seed_people(session, orgs)
        round_ = create_round(
            session,
            name="2025年度分类定级",
            deadlines={phase: now + timedelta(days=14) for phase in Phase},
            now=now,
        )
        assert round_.id is not None
        open_round(session, round_id=round_.id, now=now)
        tokens = {
            key: create_invitation(
                session, person_id=pid, round_id=round_.id, now=now, days=INVITATION_DAYS
            ).token
            for key, pid in people.items()
        }
        branch = create_branch_link(
            session, org_id=orgs["village"], round_id=round_.id, now=now, days=INVITATION_DAYS
        )
        return World(
            round_id=round_.id,
            orgs=orgs,
            people=people,
            phones={key: spec[1] for key, spec in PEOPLE.items()},
            tokens=tokens,
            branch_token=branch.token,
            names={key: spec[0] for key, spec in PEOPLE.items()},
        )


def _seed_orgs(session: Session) -> dict[str, int]:
    committee = Organization(name="青山镇党委", category="committee")
    session.add(committee)
    session.flush()
    village = Organization(
        name="红星村党支部",
        category="village",
        parent_id=committee.id,
        members=3,
        representatives=2,
    )
    enterprise = Organization(
        name="东方机械厂党支部",
        category="enterprise",
        parent_id=committee.id,
        members=1,
        staff=10,
    )
    session.add_all([village, enterprise])
    session.flush()
    ids = {"committee": committee.id, "village": village.id, "enterprise": enterprise.id}
    return {key: value for key, value in ids.items() if value is not None}


def _seed_people(session: Session, orgs: dict[str, int]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for key, (name, phone, org_key, roles) in PEOPLE.items():
        person = Person(name=name, phone=phone, org_id=orgs[org_key])
        session.add(person)
        session.flush()
        assert person.id is not None
        ids[key] = person.id
        session.add_all(
            PersonRole(person_id=person.id, org_id=orgs[org_key], role=role.value) for role in roles
        )
    session.flush()
    return ids


def bot_settings(api: FakeBotApi) -> Settings:
    """Settings pointing at the fake Bot API (no .env, no environment surprises)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_token=api.token,  # type: ignore[arg-type]
        bot_api_url=api.base_url,
        bot_file_url=api.base_file_url,
        bot_username=api.username,
    )


@pytest.fixture
def clock() -> FakeClock:
    """The bot's clock, at START."""
    return FakeClock()


@pytest.fixture
def world(engine: Engine, clock: FakeClock) -> World:
    """The seeded township (see seed_world)."""
    return seed_world(engine, clock.now)


@contextlib.asynccontextmanager
async def started_bot(
    engine: Engine,
    clock: FakeClock,
    world: World,
    *,
    with_jobs: bool = False,
    warm_tallies: bool = False,
) -> AsyncIterator[BotHarness]:
    """Build and run the bot on a fresh fake Bot API (for tests that patch things first).

    The scheduled jobs stay off unless asked for, so no reminder lands in the middle of a
    conversation story.
    """
    async with FakeBotApi() as api:
        settings = bot_settings(api)
        app = build_application(
            settings,
            engine,
            clock=clock,
            base_url=api.base_url,
            base_file_url=api.base_file_url,
            with_jobs=with_jobs,
            warm_tallies=warm_tallies,
        )
        async with running_bot(app, api):
            yield BotHarness(api, app, engine, clock, world, settings)


@pytest.fixture
async def bot(engine: Engine, clock: FakeClock, world: World) -> AsyncIterator[BotHarness]:
    """The real Application polling the fake Bot API, on the test database."""
    async with started_bot(engine, clock, world) as harness:
        yield harness
