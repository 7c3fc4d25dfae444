"""The meeting screen without a browser: initData, grants, scope, privacy, /screen."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlmodel import Session, select

from bot.screen.auth import (
    Grant,
    sign_grant,
    sign_init_data,
    verify_grant,
    verify_init_data,
)
from bot.screen.settings import screen_settings
from bot.screen.web import create_app
from storage.models import AuditLog, Round
from tests.fakebot.phone import inline_rows
from tests.screen_fixtures import (
    PUBLIC_URL,
    answer_satisfaction,
    init_data,
    seed_ballots,
    service_of,
)

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness

ORGANIZER, SECRETARY, MEMBER, WORKER = 2001, 2002, 2003, 2006
TOKEN = "123456:TEST-token"


@pytest.fixture(autouse=True)
def public_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The screen switched on, as CEPING_PUBLIC_URL does."""
    monkeypatch.setenv("CEPING_PUBLIC_URL", PUBLIC_URL)
    screen_settings.cache_clear()
    yield
    screen_settings.cache_clear()


@pytest.fixture
async def web(bot: BotHarness) -> AsyncIterator[httpx.AsyncClient]:
    """The screen's ASGI app on the test bot, in process."""
    transport = httpx.ASGITransport(app=create_app(service_of(bot)))
    async with httpx.AsyncClient(transport=transport, base_url="http://screen") as client:
        yield client


# --- initData and grants ------------------------------------------------------------------


def _fields(now: int) -> dict[str, str]:
    return {"auth_date": str(now), "user": '{"id":42,"language_code":"en"}', "query_id": "q"}


def test_init_data_signed_with_the_token_is_accepted_and_names_the_user(
    bot: BotHarness,
) -> None:
    now = bot.clock.now
    user = verify_init_data(sign_init_data(_fields(int(now.timestamp())), TOKEN), TOKEN, now=now)
    assert user is not None and user.id == 42 and user.language_code == "en"


@pytest.mark.parametrize("how", ["other token", "changed field", "stale", "repeated key", "bare"])
def test_forged_stale_or_malformed_init_data_is_refused(bot: BotHarness, how: str) -> None:
    now = bot.clock.now
    stamp = int(now.timestamp())
    data = sign_init_data(_fields(stamp), TOKEN)
    if how == "other token":
        data = sign_init_data(_fields(stamp), "654321:OTHER")
    elif how == "changed field":
        data = data.replace("%22id%22%3A42", "%22id%22%3A43")
    elif how == "stale":
        data = sign_init_data(_fields(stamp - 2 * 3600), TOKEN)
    elif how == "repeated key":
        data += "&user=%7B%22id%22%3A1%7D"
    else:
        data = "user=%7B%22id%22%3A42%7D"
    assert verify_init_data(data, TOKEN, now=now) is None


def test_a_grant_holds_until_it_expires_and_not_after_a_change(bot: BotHarness) -> None:
    now = bot.clock.now
    grant = Grant(org_id=7, round_id=3, expires=now + timedelta(hours=3))
    token = sign_grant(grant, TOKEN)
    assert verify_grant(token, TOKEN, now=now) == grant
    assert verify_grant(token, TOKEN, now=now + timedelta(hours=3)) is None
    assert verify_grant(token.replace("7.3.", "8.3.", 1), TOKEN, now=now) is None
    assert verify_grant(token, "654321:OTHER", now=now) is None


# --- The Mini App: initData for a grant, the same scope as /tally ---------------------------


async def test_an_organizer_gets_the_branch_and_a_member_or_a_forger_gets_403(
    bot: BotHarness, web: httpx.AsyncClient
) -> None:
    await bot.register(ORGANIZER, "organizer")
    await bot.register(MEMBER, "member")
    village = bot.world.orgs["village"]

    granted = await web.post(
        "/screen/api/grant", json={"init_data": init_data(bot, ORGANIZER), "branch": village}
    )
    assert granted.status_code == 200, granted.text
    data = await web.get("/screen/api/data", params={"t": granted.json()["token"]})
    assert data.status_code == 200
    assert data.json()["branch"] == "红星村党支部"

    member = await web.post(
        "/screen/api/grant", json={"init_data": init_data(bot, MEMBER), "branch": village}
    )
    assert member.status_code == 403
    forged = await web.post(
        "/screen/api/grant",
        json={"init_data": init_data(bot, ORGANIZER, token="1:FORGED"), "branch": village},
    )
    assert forged.status_code == 403
    assert (await web.get("/screen/api/data", params={"t": "1.1.9999999999.x"})).status_code == 403


async def test_a_secretary_sees_their_branch_only(bot: BotHarness, web: httpx.AsyncClient) -> None:
    await bot.register(SECRETARY, "secretary")
    mine = await web.post("/screen/api/grant", json={"init_data": init_data(bot, SECRETARY)})
    assert mine.status_code == 200 and "token" in mine.json()  # their only branch, unasked
    other = await web.post(
        "/screen/api/grant",
        json={"init_data": init_data(bot, SECRETARY), "branch": bot.world.orgs["enterprise"]},
    )
    assert other.status_code == 403


async def test_an_organizer_without_a_branch_named_is_offered_their_branches(
    bot: BotHarness, web: httpx.AsyncClient
) -> None:
    await bot.register(ORGANIZER, "organizer")
    answer = await web.post("/screen/api/grant", json={"init_data": init_data(bot, ORGANIZER)})
    assert answer.status_code == 200
    assert {b["name"] for b in answer.json()["branches"]} == {"红星村党支部", "东方机械厂党支部"}


# --- /screen: the projector link ---------------------------------------------------------------


async def test_screen_gives_a_projector_link_that_is_refused_after_the_meeting(
    bot: BotHarness, web: httpx.AsyncClient
) -> None:
    phone = await bot.register(ORGANIZER, "organizer")
    reply = await phone.send("/screen 红星村")
    assert "红星村党支部" in reply.text and "只读" in reply.text, reply.texts
    url = next(word for word in reply.text.split() if word.startswith(PUBLIC_URL))
    token = parse_qs(urlparse(url).query)["t"][0]
    assert any("会场大屏" in b for b in phone.buttons)  # the Mini App button beside it

    assert (await web.get("/screen/", params={"t": token})).status_code == 200
    assert (await web.get("/screen/api/data", params={"t": token})).status_code == 200
    assert (await web.get("/screen/api/qr.svg", params={"t": token})).text.startswith("<")

    bot.clock.advance(hours=3)
    assert (await web.get("/screen/", params={"t": token})).status_code == 403
    assert (await web.get("/screen/api/data", params={"t": token})).status_code == 403


async def test_publish_carries_the_mini_app_button_of_its_branch(bot: BotHarness) -> None:
    phone = await bot.register(SECRETARY, "secretary")
    reply = await phone.send("/publish")
    assert reply.last is not None
    button = next(b for row in inline_rows(reply.last) for b in row if "web_app" in b)
    village = bot.world.orgs["village"]
    assert button["web_app"]["url"] == f"{PUBLIC_URL}/screen/?b={village}"


async def test_tally_of_a_branch_carries_the_mini_app_button(bot: BotHarness) -> None:
    phone = await bot.register(SECRETARY, "secretary")
    reply = await phone.send("/tally")
    assert reply.last is not None
    button = next(b for row in inline_rows(reply.last) for b in row if "web_app" in b)
    assert button["web_app"]["url"] == f"{PUBLIC_URL}/screen/?b={bot.world.orgs['village']}"


async def test_screen_is_refused_to_a_member_and_names_no_branch_outside_scope(
    bot: BotHarness,
) -> None:
    member = await bot.register(MEMBER, "member")
    assert "没有查看" in (await member.send("/screen 红星村")).text
    secretary = await bot.register(SECRETARY, "secretary")
    assert "没有找到" in (await secretary.send("/screen 东方机械厂")).text
    with Session(bot.engine) as session:
        refused = session.exec(
            select(AuditLog).where(AuditLog.action == "screen", AuditLog.outcome == "refused")
        ).all()
    # Both refusals are on record, like every report command's, and name no branch.
    assert len(refused) == 2 and all(row.target is None for row in refused)


async def test_screen_without_a_public_url_says_the_screen_is_off(
    bot: BotHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CEPING_PUBLIC_URL")
    screen_settings.cache_clear()
    phone = await bot.register(ORGANIZER, "organizer")
    assert "CEPING_PUBLIC_URL" in (await phone.send("/screen 红星村")).text


# --- Privacy: no per-option counts below the small-group threshold -------------------------------


async def _village_data(bot: BotHarness, web: httpx.AsyncClient) -> dict[str, object]:
    grant = Grant(bot.world.orgs["village"], bot.world.round_id, bot.clock.now + timedelta(hours=1))
    token = sign_grant(grant, bot.settings.require_token())
    response = await web.get("/screen/api/data", params={"t": token})
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_below_the_threshold_the_screen_shows_participation_only(
    bot: BotHarness, web: httpx.AsyncClient
) -> None:
    seed_ballots(bot, 4)
    note = (await _village_data(bot, web))["announcement"]
    assert note == {"ballots": 4, "threshold": 5, "small_group": True, "published": True}


async def test_before_publish_the_screen_shows_participation_only(
    bot: BotHarness, web: httpx.AsyncClient
) -> None:
    seed_ballots(bot, 5, publish=False)
    note = (await _village_data(bot, web))["announcement"]
    assert note["published"] is False and "rates" not in note and "items" not in note


async def test_at_the_threshold_the_screen_shows_rates_and_counts(
    bot: BotHarness, web: httpx.AsyncClient
) -> None:
    seed_ballots(bot, 5)
    note = (await _village_data(bot, web))["announcement"]
    assert isinstance(note, dict) and note["small_group"] is False
    assert note["rates"]["satisfaction"] == "100.0%"
    first = note["items"][0]
    assert first["options"][0] == {"label": "满意", "count": 5, "positive": True}


async def test_the_round_threshold_option_is_honoured(
    bot: BotHarness, web: httpx.AsyncClient
) -> None:
    with Session(bot.engine) as session:
        round_ = session.get(Round, bot.world.round_id)
        assert round_ is not None
        round_.options = {**(round_.options or {}), "small_group_threshold": 8}
        session.add(round_)
        session.commit()
    seed_ballots(bot, 5)
    note = (await _village_data(bot, web))["announcement"]
    assert isinstance(note, dict) and note["small_group"] is True and "items" not in note


def _members_answered(bot: BotHarness) -> int:
    built = service_of(bot).build(bot.world.round_id, bot.world.orgs["village"], "zh_CN")
    coverage = json.loads(built)["coverage"]
    return next(c["answered"] for c in coverage if c["audience"] == "members")


async def test_a_submitted_ballot_counts_on_the_screen(bot: BotHarness) -> None:
    assert _members_answered(bot) == 0
    phone = await bot.register(MEMBER, "member")
    await answer_satisfaction(phone)
    assert _members_answered(bot) == 1


# --- Webhook mode: one server for Telegram and the screen ------------------------------------


async def test_the_webhook_route_takes_updates_only_with_telegrams_secret_header(
    bot: BotHarness,
) -> None:
    from bot.screen.server import SECRET_HEADER, webhook_route

    route = webhook_route(bot.app, "hook", "s3cret")
    transport = httpx.ASGITransport(app=create_app(service_of(bot), [route]))
    update = {
        "update_id": 1,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 1, "type": "private"},
            "from": {"id": 1, "is_bot": False, "first_name": "x"},
            "text": "hi",
        },
    }
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        assert (await client.post("/hook", json=update)).status_code == 403
        wrong = await client.post("/hook", json=update, headers={SECRET_HEADER: "guess"})
        assert wrong.status_code == 403
        right = await client.post("/hook", json=update, headers={SECRET_HEADER: "s3cret"})
        assert right.status_code == 200
        assert (await client.get("/screen/")).status_code == 200  # the screen on the same port
