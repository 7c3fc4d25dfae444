"""Records, errors and request decoding of the fake Bot API (tests.fakebot.server)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from aiohttp import BodyPartReader, web
from telegram.ext import Application

if TYPE_CHECKING:
    pass


JSON = dict[str, Any]
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
LOGGER = logging.getLogger("tests.fakebot")

# ---------------------------------------------------------------------------------------------
# Records, errors and request decoding
# ---------------------------------------------------------------------------------------------

VISIBLE_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "deleteMessage",
        "sendPhoto",
        "sendDocument",
        "answerCallbackQuery",
    }
)
"""Calls a user can see on the phone; a Phone waits for these after sending something."""

_STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "url",
        "secret_token",
        "language_code",
        "action",
        "file_id",
        "inline_message_id",
        "description",
        "short_description",
        "name",
        "business_connection_id",
        "message_effect_id",
        "ip_address",
        "document",
        "photo",
        "thumbnail",
        "certificate",
    }
)
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class Call(NamedTuple):
    """One request the bot made: the Bot API method and its decoded parameters."""

    method: str
    params: JSON


@dataclass
class CallRecord:
    """A request with what the fake answered (result is None for errors)."""

    index: int
    method: str
    params: JSON
    status: int = 200
    result: Any = None
    description: str | None = None


@dataclass
class Fault:
    """A scripted failure for the next call(s) of one method."""

    error_code: int
    description: str
    retry_after: int | None = None
    drop_connection: bool = False


@dataclass
class StoredFile:
    """A file the bot uploaded or a user sent, downloadable under base_file_url."""

    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_name: str | None = None
    mime_type: str | None = None

    @property
    def file_size(self) -> int:
        """Size in bytes, as Telegram reports it."""
        return len(self.data)


@dataclass
class ChatState:
    """One chat as the server knows it: its Chat object and its messages by id."""

    chat: JSON
    messages: dict[int, JSON] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    next_message_id: int = 1
    reply_keyboard: JSON | None = None
    menu_button: JSON | None = None


class ApiError(Exception):
    """An error answer of the Bot API: HTTP status = error_code, with description."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JSON:
        """The JSON body Telegram sends with this error."""
        body: JSON = {"ok": False, "error_code": self.error_code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(detail: str) -> ApiError:
    """400 with Telegram's 'Bad Request: ...' prefix."""
    return ApiError(400, f"Bad Request: {detail}")


def decode_form_value(name: str, value: str) -> Any:
    """Undo PTB's form encoding: non-string parameters arrive JSON-encoded."""
    if name in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


Handler = Callable[[JSON, dict[str, "UploadedFile"]], Awaitable[Any]]


@dataclass
class UploadedFile:
    """A multipart file part of a request."""

    filename: str | None
    data: bytes
    content_type: str | None


def inline_markup(markup: Any) -> JSON | None:
    """The inline keyboard part of reply_markup (the only kind a Message carries back)."""
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        return markup
    return None


def check_inline_keyboard(markup: JSON) -> None:
    """Validate buttons the way Telegram does for the mistakes bots actually make."""
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")
            if not button.get("text"):
                raise bad_request("text buttons are unallowed in the inline keyboard")


def as_int(value: Any) -> int | None:
    """An int chat/message id from a parameter, or None if it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def scope_key(scope: Any, language_code: str) -> tuple[str, str]:
    """Dictionary key for a BotCommandScope + language ('default' scope when absent)."""
    return json.dumps(scope or {"type": "default"}, sort_keys=True), language_code


def photo_sizes(stored: StoredFile) -> list[JSON]:
    """The PhotoSize list Telegram returns for one photo (a thumbnail and the full size)."""
    return [
        {
            "file_id": f"{stored.file_id}-s",
            "file_unique_id": f"{stored.file_unique_id}-s",
            "width": 90,
            "height": 90,
            "file_size": min(stored.file_size, 1024),
        },
        {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "width": 800,
            "height": 800,
            "file_size": stored.file_size,
        },
    ]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def read_params(request: web.Request) -> tuple[JSON, dict[str, UploadedFile]]:
    """Query string + JSON, urlencoded or multipart body, decoded to Python values."""
    params: JSON = {k: decode_form_value(k, v) for k, v in request.query.items()}
    files: dict[str, UploadedFile] = {}
    if request.content_type == "application/json":
        body = await request.json() if request.can_read_body else None
        params.update(body or {})
    elif request.content_type == "multipart/form-data":
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            data = await part.read()
            if part.filename is not None:
                content_type = part.headers.get("Content-Type")
                files[part.name] = UploadedFile(part.filename, bytes(data), content_type)
            else:
                params[part.name] = decode_form_value(part.name, data.decode())
    elif request.can_read_body:
        form = await request.post()
        params.update({k: decode_form_value(k, str(v)) for k, v in form.items()})
    return params, files


async def drop_connection(request: web.Request, record: CallRecord) -> web.StreamResponse:
    """Close the socket without answering, like a network failure mid-request."""
    record.status, record.description = 0, "connection dropped"
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)  # never reaches the client: the socket is gone
