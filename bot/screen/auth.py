"""Who may look at a screen: Telegram's Mini App initData, and signed read-only grants.

initData is checked exactly as Telegram documents it ("Validating data received via the
Mini App"): ``secret_key = HMAC_SHA256(key="WebAppData", msg=bot_token)``, then
``hash = hex(HMAC_SHA256(key=secret_key, msg=data_check_string))`` where the data-check
string is every received field except ``hash``, as ``key=value`` lines sorted by key. An
old ``auth_date`` is refused too, so a leaked initData does not open the screen forever.

A grant is what the page then carries: ``branch.round.expiry[.person]`` and an HMAC-SHA256
tag under a key derived from the bot token (never the token itself). The projector link
(/screen BRANCH) is a grant without a person; a Mini App grant names the person, so their
scope is read again whenever the page connects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

INIT_DATA_MAX_AGE = timedelta(hours=1)
"""How old a Mini App's initData may be; Telegram makes a fresh one at every launch."""

_GRANT_KEY_LABEL = b"ceping meeting screen grant v1"


@dataclass(frozen=True)
class WebAppUser:
    """The Telegram user a valid initData names."""

    id: int
    language_code: str | None


def init_data_secret(bot_token: str) -> bytes:
    """Telegram's secret key for a bot's Mini App data."""
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def _check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields))


def sign_init_data(fields: dict[str, str], bot_token: str) -> str:
    """The query string Telegram would hand a Mini App for these fields (tests, bench)."""
    from urllib.parse import urlencode

    digest = hmac.new(init_data_secret(bot_token), _check_string(fields).encode(), hashlib.sha256)
    return urlencode({**fields, "hash": digest.hexdigest()})


def verify_init_data(
    init_data: str, bot_token: str, *, now: datetime, max_age: timedelta = INIT_DATA_MAX_AGE
) -> WebAppUser | None:
    """The user of a genuine, fresh initData; None for a forged, stale or malformed one."""
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    fields = dict(pairs)
    received = fields.pop("hash", "")
    if len(fields) + 1 != len(pairs) or not received:
        return None  # a repeated key could smuggle a second value past the check
    expected = hmac.new(
        init_data_secret(bot_token), _check_string(fields).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, received):
        return None
    try:
        auth_date = datetime.fromtimestamp(int(fields["auth_date"]), tz=UTC)
        user: dict[str, Any] = json.loads(fields["user"])
        user_id = int(user["id"])
    except (KeyError, ValueError, TypeError):
        return None
    if not (now - max_age <= auth_date <= now + timedelta(minutes=5)):
        return None
    language = user.get("language_code")
    return WebAppUser(user_id, language if isinstance(language, str) else None)


# --- Grants ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """Read-only access to one branch's screen in one round until ``expires``."""

    org_id: int
    round_id: int
    expires: datetime
    person_id: int | None = None  # None: a projector link


def _grant_key(bot_token: str) -> bytes:
    # Derived, so a grant tag can never be replayed as anything Telegram accepts.
    return hmac.new(bot_token.encode(), _GRANT_KEY_LABEL, hashlib.sha256).digest()


def _tag(payload: str, bot_token: str) -> str:
    digest = hmac.new(_grant_key(bot_token), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign_grant(grant: Grant, bot_token: str) -> str:
    """The grant as a URL-safe token."""
    parts = [str(grant.org_id), str(grant.round_id), str(int(grant.expires.timestamp()))]
    if grant.person_id is not None:
        parts.append(str(grant.person_id))
    payload = ".".join(parts)
    return f"{payload}.{_tag(payload, bot_token)}"


def verify_grant(token: str, bot_token: str, *, now: datetime) -> Grant | None:
    """The grant of a genuine, unexpired token; None otherwise."""
    payload, _, tag = token.rpartition(".")
    if not payload or not hmac.compare_digest(_tag(payload, bot_token), tag):
        return None
    try:
        numbers = [int(part) for part in payload.split(".")]
    except ValueError:
        return None
    if len(numbers) not in (3, 4):
        return None
    expires = datetime.fromtimestamp(numbers[2], tz=UTC)
    if now >= expires:
        return None
    person = numbers[3] if len(numbers) == 4 else None
    return Grant(org_id=numbers[0], round_id=numbers[1], expires=expires, person_id=person)
