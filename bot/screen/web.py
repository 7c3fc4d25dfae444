"""The meeting screen as an ASGI app (Starlette): the page, its data, its live feed, its QR.

Routes, all under ``/screen``:

- ``GET /screen/?t=GRANT`` (projector) or ``GET /screen/?b=BRANCH`` (Mini App): the page.
- ``POST /screen/api/grant`` with ``{"init_data": …, "branch": …}``: a Mini App's initData
  (checked per Telegram) exchanged for a grant on a branch the person may see, else 403.
- ``GET /screen/api/data?t=GRANT&lang=…``: the branch's screen as JSON (403 when refused).
- ``GET /screen/api/stream?t=GRANT&lang=…``: the same as server-sent events, pushed only when
  it changes and checked once a second: one connection per viewer instead of a request a
  second.
- ``GET /screen/api/qr.svg?t=GRANT``: the QR code of the branch link for mass representatives.

Cost: each branch's JSON is built at most once per :data:`REFRESH` seconds, whatever the
number of viewers, and shared by all of them (the content depends on the branch and the
language only: /publish shows every viewer in scope the same announcement).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import qrcode
import qrcode.image.svg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from bot.screen.auth import Grant, sign_grant, verify_grant, verify_init_data
from bot.screen.page import font_path, render_page
from storage.db import Engine, transaction
from storage.screen import (
    SCREEN_AUDIENCES,
    BranchScreen,
    branch_link_token,
    branch_screen,
    screen_viewer,
    visible_branches,
)
from surveys.i18n import normalize_locale, t
from surveys.text import short_number

REFRESH = 0.9
"""Seconds a branch's JSON is reused before it is read again (the page asks ≤ 1/s)."""
PUSH_INTERVAL = 1.0
"""Seconds between two checks of a live feed: at most one event a second per viewer."""
KEEPALIVE = 15
"""Checks without a change before a comment line keeps proxies from closing the feed."""
SCOPE_TTL = 10.0
"""Seconds a Mini App person's scope check is reused (a role removed counts within that)."""
FONT_CACHE = "public, max-age=2592000, immutable"
"""The bundled CJK font is fetched once per device (and only by one without a CJK font)."""
MINI_APP_HOURS = 3.0
"""Life of the grant a Mini App gets for its initData (a meeting's length, as a projector)."""


@dataclass
class ScreenService:
    """What the screen needs from the bot process, and its shared caches."""

    engine: Engine
    bot_token: str
    clock: Callable[[], datetime]
    zone: tzinfo
    bot_username: Callable[[], str | None]
    link_days: int = 30
    refresh: float = REFRESH  # 0 reads the database on every request (the bench does)
    _data: dict[tuple[int, int, str], tuple[float, bytes]] = field(default_factory=dict)
    _locks: dict[tuple[int, int, str], asyncio.Lock] = field(default_factory=dict)
    _scopes: dict[tuple[int, int], tuple[float, bool]] = field(default_factory=dict)
    _qr: dict[int, tuple[float, str | None]] = field(default_factory=dict)

    # --- Grants ---------------------------------------------------------------------------

    def grant(self, token: str | None) -> Grant | None:
        """The grant of a token, if genuine and unexpired (a person's scope is not checked)."""
        if not token:
            return None
        return verify_grant(token, self.bot_token, now=self.clock())

    async def allowed(self, grant: Grant) -> bool:
        """Whether a Mini App person still may see the branch (projector grants always)."""
        if grant.person_id is None:
            return True
        key = (grant.person_id, grant.org_id)
        cached = self._scopes.get(key)
        if cached is not None and time.monotonic() - cached[0] < SCOPE_TTL:
            return cached[1]
        verdict = await asyncio.to_thread(self._still_allowed, grant)
        self._scopes[key] = (time.monotonic(), verdict)
        return verdict

    def _still_allowed(self, grant: Grant) -> bool:
        from storage.scope import scope_for

        with transaction(self.engine) as session:
            scope = scope_for(session, person_id=grant.person_id, round_id=grant.round_id)
            return scope.can_see(grant.org_id)

    # --- Data ------------------------------------------------------------------------------

    async def data(self, grant: Grant, locale: str) -> bytes:
        """The branch's screen as JSON, shared by every viewer for REFRESH seconds."""
        key = (grant.round_id, grant.org_id, locale)
        cached = self._data.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.refresh:
            return cached[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one read per branch, however many viewers ask at once
            cached = self._data.get(key)
            if cached is not None and time.monotonic() - cached[0] < self.refresh:
                return cached[1]
            body = await asyncio.to_thread(self.build, grant.round_id, grant.org_id, locale)
            self._data[key] = (time.monotonic(), body)
            return body

    def build(self, round_id: int, org_id: int, locale: str) -> bytes:
        """Read the branch and render its JSON (runs in a worker thread)."""
        with transaction(self.engine) as session:
            screen = branch_screen(session, round_id=round_id, org_id=org_id)
        payload = screen_payload(screen, locale, self.zone) if screen else {"missing": True}
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

    async def qr_svg(self, grant: Grant) -> str | None:
        """The QR code of the branch link (made on first use), or None without seats."""
        cached = self._qr.get(grant.org_id)
        if cached is not None and time.monotonic() - cached[0] < 60:
            return cached[1]
        svg = await asyncio.to_thread(self._make_qr, grant)
        self._qr[grant.org_id] = (time.monotonic(), svg)
        return svg

    def _make_qr(self, grant: Grant) -> str | None:
        username = self.bot_username()
        if not username:
            return None
        with transaction(self.engine) as session:
            token = branch_link_token(
                session,
                org_id=grant.org_id,
                round_id=grant.round_id,
                now=self.clock(),
                days=self.link_days,
            )
        if token is None:
            return None
        image = qrcode.make(
            f"https://t.me/{username}?start={token}",
            image_factory=qrcode.image.svg.SvgPathImage,
            border=2,
        )
        return image.to_string(encoding="unicode")  # type: ignore[no-any-return]

    # --- Mini App ----------------------------------------------------------------------------

    def exchange(self, init_data: str, branch: int | None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for a Mini App's initData and the branch it asks for."""
        user = verify_init_data(init_data, self.bot_token, now=self.clock())
        if user is None:
            return 403, {"error": "forbidden"}
        with transaction(self.engine) as session:
            viewer = screen_viewer(session, telegram_user_id=user.id)
            locale = viewer.language or normalize_locale(user.language_code)
            if viewer.scope is None or viewer.round_id is None or viewer.scope.empty:
                return 403, {"error": "forbidden", "locale": locale}
            names = visible_branches(session, viewer.scope)
        if branch is None and len(names) == 1:
            branch = next(iter(names))
        if branch is None:
            choices = [{"id": k, "name": v} for k, v in sorted(names.items(), key=lambda i: i[1])]
            return 200, {"branches": choices, "locale": locale}
        if not viewer.can_see(branch):
            return 403, {"error": "forbidden", "locale": locale}
        grant = Grant(
            org_id=branch,
            round_id=viewer.round_id,
            expires=self.clock() + timedelta(hours=MINI_APP_HOURS),
            person_id=viewer.person_id,
        )
        return 200, {"token": sign_grant(grant, self.bot_token), "locale": locale}


# --- The JSON the page renders ----------------------------------------------------------------


def _percent(value: Decimal | None) -> str | None:
    return None if value is None else f"{value * 100:.1f}%"


def screen_payload(screen: BranchScreen, locale: str, zone: tzinfo) -> dict[str, Any]:
    """What the page shows, localized; nothing /publish would not show the same viewer."""
    coverage = []
    for audience in SCREEN_AUDIENCES:
        item = screen.coverage.get(audience)
        if item is not None:
            coverage.append(
                {
                    "audience": audience.value,
                    "label": t(f"screen.audience.{audience.value}", locale),
                    "answered": item.respondents,
                    "target": item.required,
                    "roster": item.denominator,
                    "met": item.status.value == "met",
                }
            )
    note = screen.announcement
    announced: dict[str, Any] = {
        "ballots": note.ballots,
        "threshold": note.threshold,
        "small_group": note.small_group,
        "published": note.published,
    }
    if not note.small_group:
        announced["rates"] = {
            "satisfaction": _percent(note.satisfaction_rate),
            "awareness": _percent(note.awareness_rate),
            "participation": _percent(note.participation_rate),
        }
        announced["score"] = None if note.score is None else short_number(note.score)
        announced["items"] = _items(screen, locale)
    signed = {}
    for role in ("secretary", "work_group_leader"):
        signature = screen.signed.get(role)
        signed[role] = None
        if signature is not None:
            when = signature.signed_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            signed[role] = {"name": signature.name, "when": when}
    return {
        "branch": screen.name,
        "round": screen.round_name,
        "coverage": coverage,
        "announcement": announced,
        "signed": signed,
    }


def _items(screen: BranchScreen, locale: str) -> list[dict[str, Any]]:
    """Per-question option counts, for the bars (only ever called above the threshold)."""
    distribution = screen.announcement.distribution or {}
    items = []
    for item in screen.instrument.items:
        counts = distribution.get(item.id)
        if not counts:
            continue
        label = item.description.get(locale) if item.description else item.text.get(locale)
        items.append(
            {
                "id": item.id.upper(),
                "label": label,
                "options": [
                    {
                        "label": option.text.get(locale),
                        "count": int(counts.get(option.id, 0)),
                        "positive": option.positive,
                    }
                    for option in item.options
                ],
            }
        )
    return items


# --- Routes -------------------------------------------------------------------------------------


def _locale(request: Request) -> str:
    return normalize_locale(request.query_params.get("lang"))


def _forbidden(locale: str) -> JSONResponse:
    return JSONResponse({"error": "forbidden", "message": t("screen.refused", locale)}, 403)


def create_app(service: ScreenService, extra_routes: list[Route] | None = None) -> Starlette:
    """The screen's ASGI app (plus e.g. the webhook route when serving Telegram too)."""

    async def page(request: Request) -> Response:
        locale = _locale(request)
        token = request.query_params.get("t")
        if token is not None and service.grant(token) is None:
            html = render_page(locale, refused=t("screen.link_refused", locale))
            return HTMLResponse(html, status_code=403)
        return HTMLResponse(render_page(locale))

    async def grant(request: Request) -> Response:
        try:
            body = await request.json()
            init_data = str(body["init_data"])
            branch = body.get("branch")
            branch = int(branch) if branch not in (None, "") else None
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "bad request"}, 400)
        status, answer = await asyncio.to_thread(service.exchange, init_data, branch)
        if status == 403:
            answer["message"] = t("screen.refused", answer.get("locale") or _locale(request))
        return JSONResponse(answer, status)

    async def authorized(request: Request) -> Grant | None:
        found = service.grant(request.query_params.get("t"))
        if found is None or not await service.allowed(found):
            return None
        return found

    async def data(request: Request) -> Response:
        found = await authorized(request)
        if found is None:
            return _forbidden(_locale(request))
        body = await service.data(found, _locale(request))
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def stream(request: Request) -> Response:
        found = await authorized(request)
        if found is None:
            return _forbidden(_locale(request))
        return StreamingResponse(
            _events(service, found, _locale(request)),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def qr(request: Request) -> Response:
        found = await authorized(request)
        if found is None:
            return _forbidden(_locale(request))
        svg = await service.qr_svg(found)
        if svg is None:
            return Response(status_code=404)
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "max-age=60"})

    async def font(request: Request) -> Response:
        path = font_path()
        if path is None:
            return Response(status_code=404)
        return FileResponse(path, media_type="font/otf", headers={"Cache-Control": FONT_CACHE})

    routes = [
        Route("/screen/", page),
        Route("/screen/font.otf", font),
        Route("/screen", page),
        Route("/screen/api/grant", grant, methods=["POST"]),
        Route("/screen/api/data", data),
        Route("/screen/api/stream", stream),
        Route("/screen/api/qr.svg", qr),
        *(extra_routes or []),
    ]
    return Starlette(routes=routes)


async def _events(service: ScreenService, grant: Grant, locale: str) -> AsyncIterator[bytes]:
    """The branch's JSON whenever it changes, checked once a second, until the grant ends."""
    yield b"retry: 3000\n\n"
    last: bytes | None = None
    quiet = 0
    while True:
        if service.clock() >= grant.expires or not await service.allowed(grant):
            yield b"event: expired\ndata: {}\n\n"
            return
        body = await service.data(grant, locale)
        if body != last:
            yield b"data: " + body + b"\n\n"
            last, quiet = body, 0
        elif quiet >= KEEPALIVE:
            yield b": keepalive\n\n"
            quiet = 0
        quiet += 1
        await asyncio.sleep(PUSH_INTERVAL)
