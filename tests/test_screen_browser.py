"""The meeting screen in a real browser: Debian's headless Chromium driven by Playwright.

Skipped, saying why, where /usr/bin/chromium or Playwright is missing (CI installs both).
Every request the page makes to anywhere but the test server is aborted: the page must
work with no outside file, and the test sends nothing off this machine.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

import pytest

from bot.screen.auth import Grant, sign_grant
from bot.screen.server import bound_port, screen_server
from bot.screen.settings import screen_settings
from tests.screen_fixtures import PUBLIC_URL, answer_satisfaction, init_data, service_of

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ORGANIZER, MEMBER = 3001, 3003

try:
    from playwright.async_api import Page, Route, async_playwright
except ImportError:  # pragma: no cover - the test extra brings it
    async_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
    pytest.mark.skipif(async_playwright is None, reason="playwright is not installed"),
]


@pytest.fixture(autouse=True)
def public_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CEPING_PUBLIC_URL", PUBLIC_URL)
    screen_settings.cache_clear()
    yield
    screen_settings.cache_clear()


@pytest.fixture
async def screen_url(bot: BotHarness) -> AsyncIterator[str]:
    """The screen served on a free loopback port, on the test bot's database and clock."""
    async with screen_server(service_of(bot), "127.0.0.1", 0) as server:
        yield f"http://127.0.0.1:{bound_port(server)}/screen/"


@pytest.fixture
async def page(screen_url: str) -> AsyncIterator[Page]:
    """A Chromium tab that may reach the test server only."""
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 800})

        async def local_only(route: Route) -> None:
            if route.request.url.startswith("http://127.0.0.1:"):
                await route.continue_()
            else:
                await route.abort()

        await context.route("**/*", local_only)
        tab = await context.new_page()
        try:
            yield tab
        finally:
            await context.close()  # closes the live feed before the server stops
            await browser.close()


def _projector_token(bot: BotHarness, hours: float = 3) -> str:
    grant = Grant(
        bot.world.orgs["village"], bot.world.round_id, bot.clock.now + timedelta(hours=hours)
    )
    return sign_grant(grant, bot.settings.require_token())


async def _answered(page: Page, audience: str) -> str:
    return await page.inner_text(f"[data-audience={audience}] .answered")


async def test_the_mini_app_loads_with_valid_init_data_and_a_forged_one_gets_403(
    bot: BotHarness, screen_url: str, page: Page, tmp_path: Path
) -> None:
    await bot.register(ORGANIZER, "organizer")
    village = bot.world.orgs["village"]
    fragment = "tgWebAppData=" + quote(init_data(bot, ORGANIZER)) + "&tgWebAppVersion=8.0"
    await page.goto(f"{screen_url}?b={village}#{fragment}")
    await page.wait_for_selector("[data-audience=members] .answered")
    assert await page.inner_text("#branch") == "红星村党支部"
    assert await _answered(page, "members") == "0"
    await page.wait_for_selector("#qr:not(.hidden)")  # the branch link's QR code is shown
    shot = tmp_path / "screen-mini-app.png"
    await page.evaluate("document.fonts.ready")
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")

    forged = "tgWebAppData=" + quote(init_data(bot, ORGANIZER, token="1:FORGED"))
    statuses: list[int] = []
    page.on("response", lambda r: statuses.append(r.status) if "api/grant" in r.url else None)
    await page.goto(f"{screen_url}?b={village}&forged=1#{forged}")
    await page.wait_for_selector("#message:not(.hidden)")
    assert statuses == [403]
    assert "没有查看" in await page.inner_text("#refused")
    assert await page.inner_text("#branch") == "…"


async def test_the_projector_link_works_then_is_refused_after_the_meeting(
    bot: BotHarness, screen_url: str, page: Page
) -> None:
    url = f"{screen_url}?{urlencode({'t': _projector_token(bot), 'lang': 'en'})}"
    response = await page.goto(url)
    assert response is not None and response.status == 200
    await page.wait_for_selector("[data-audience=masses] .answered")
    assert "Public representatives" in await page.inner_text("#coverage")

    bot.clock.advance(hours=3)
    response = await page.goto(url)
    assert response is not None and response.status == 403
    assert "expired" in await page.inner_text("#refused")


async def test_a_phone_submitting_moves_the_number_within_two_seconds_without_counts(
    bot: BotHarness, screen_url: str, page: Page, tmp_path: Path
) -> None:
    await page.goto(f"{screen_url}?t={_projector_token(bot)}")
    await page.wait_for_selector("[data-audience=members] .answered")
    assert await _answered(page, "members") == "0"

    phone = await bot.register(MEMBER, "member")
    await answer_satisfaction(phone)  # through the fake Bot API, as a phone does
    # A bounded wait for the condition, not a sleep: the feed must show it within 2 s.
    await page.wait_for_function(
        "document.querySelector('[data-audience=members] .answered').textContent === '1'",
        timeout=2000,
    )
    # One ballot is below the small-group threshold: no rates, no per-option count at all.
    assert await page.locator(".option-count").count() == 0
    assert await page.locator(".rate").count() == 0
    assert "当场公布" in await page.inner_text("#tally")  # no numbers before /publish
    shot = tmp_path / "screen-after-a-ballot.png"
    await page.evaluate("document.fonts.ready")
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")


async def test_above_the_threshold_the_page_shows_the_rates_and_the_bars(
    bot: BotHarness, screen_url: str, page: Page, tmp_path: Path
) -> None:
    from tests.screen_fixtures import seed_ballots

    seed_ballots(bot, 6)
    await page.goto(f"{screen_url}?t={_projector_token(bot)}")
    await page.wait_for_selector(".option-count")
    assert await page.locator(".rate").count() == 3
    assert "100.0%" in await page.inner_text("#tally")
    shot = tmp_path / "screen-announced.png"
    await page.evaluate("document.fonts.ready")
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
