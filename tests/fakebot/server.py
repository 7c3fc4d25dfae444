"""A fake Telegram Bot API server (aiohttp) that the real python-telegram-bot talks to over HTTP.

Faithful where tests depend on it: request decoding as PTB sends it (form/multipart with
JSON-encoded values), long-polling getUpdates with offsets and 409 conflicts, Message objects,
Telegram's error texts and HTTP codes, HTML/Markdown parse_mode, and files. See README.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple

from aiohttp import BodyPartReader, web
from telegram.ext import Application, BaseUpdateProcessor, ContextTypes

if TYPE_CHECKING:
    from tests.fakebot.phone import Phone

JSON = dict[str, Any]
AnyApplication = Application[Any, Any, Any, Any, Any, Any]
_LOGGER = logging.getLogger("tests.fakebot")

# ---------------------------------------------------------------------------------------------
# Telegram's text rules: parse_mode rendering, UTF-16 offsets and command entities
# ---------------------------------------------------------------------------------------------

_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^<>]*)?)>")
_HREF = re.compile(r"""href\s*=\s*(?:"([^"]*)"|'([^']*)'|(\S+))""")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY = re.compile(r"&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);")
_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])")
_MD2_ALWAYS_ESCAPED = set("#+-={}.!")


class ParseError(ValueError):
    """The text cannot be parsed with the given parse_mode (Telegram answers 400)."""


def utf16_len(text: str) -> int:
    """Length of text in UTF-16 code units, the unit Telegram uses for entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def command_entities(text: str) -> list[JSON]:
    """bot_command entities Telegram attaches to every /command in a user's text."""
    return [
        {
            "type": "bot_command",
            "offset": utf16_len(text[: match.start()]),
            "length": utf16_len(match.group()),
        }
        for match in _COMMAND.finditer(text)
    ]


def _unescape(chunk: str) -> str:
    """Replace the HTML entities Telegram supports; leave any other '&' as it is."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("#x"):
            return chr(int(name[2:], 16))
        if name.startswith("#"):
            return chr(int(name[1:]))
        return _NAMED_ENTITIES.get(name, match.group())

    return _ENTITY.sub(replace, chunk)


def _html_entity(tag: str, attrs: str, offset: int, length: int) -> JSON | None:
    """The MessageEntity for one closed HTML tag, or None when it is empty."""
    if length == 0:
        return None
    entity: JSON = {"type": _HTML_ENTITY_TYPES[tag], "offset": offset, "length": length}
    if tag == "a":
        href = _HREF.search(attrs)
        entity["url"] = next((g for g in href.groups() if g), "") if href else ""
    if tag == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    return entity


def render_html(text: str) -> tuple[str, list[JSON]]:
    """Strip Telegram HTML into (plain text, entities); raise ParseError like the Bot API."""
    plain: list[str] = []
    entities: list[JSON] = []
    stack: list[tuple[str, str, int]] = []
    position = 0
    offset = 0
    while position < len(text):
        start = text.find("<", position)
        chunk = text[position:] if start < 0 else text[position:start]
        plain.append(_unescape(chunk))
        offset += utf16_len(plain[-1])
        if start < 0:
            break
        byte_offset = len(text[:start].encode())
        match = _TAG.match(text, start)
        if not match:
            name = re.match(r"</?([^\s>]*)", text[start:])
            raise ParseError(
                f'Unsupported start tag "{name.group(1) if name else ""}" '
                f"at byte offset {byte_offset}"
            )
        closing, tag, attrs = match.group(1) == "/", match.group(2).lower(), match.group(3)
        if tag not in _HTML_ENTITY_TYPES:
            raise ParseError(f'Unsupported start tag "{tag}" at byte offset {byte_offset}')
        if not closing:
            stack.append((tag, attrs, offset))
        elif not stack or stack[-1][0] != tag:
            expected = f'"</{stack[-1][0]}>"' if stack else "no end tag"
            raise ParseError(
                f"Unmatched end tag at byte offset {byte_offset}, "
                f'expected {expected}, found "</{tag}>"'
            )
        else:
            open_tag, open_attrs, open_offset = stack.pop()
            entity = _html_entity(open_tag, open_attrs, open_offset, offset - open_offset)
            if entity:
                entities.append(entity)
        position = match.end()
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(plain), entities


def _check_markdown_v2(text: str) -> None:
    """Reject MarkdownV2 text with an unescaped character that is always reserved."""
    in_code = False
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "`":
            in_code = not in_code
        elif char in _MD2_ALWAYS_ESCAPED and not in_code:
            raise ParseError(
                f"Character '{char}' is reserved and must be escaped with the preceding '\\'"
            )


def render_markdown_v2(text: str) -> str:
    """Plain text of a MarkdownV2 message (formatting dropped, no entities)."""
    _check_markdown_v2(text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"(?<!\\)(\|\||[*_~`])", "", text)
    return re.sub(r"\\(.)", r"\1", text)


_LEGACY_MARKS = {"*": "bold", "_": "italic", "`": "code"}
_LEGACY_LINK = re.compile(r"\[([^\]]*)\]\(([^)]*)\)")


def render_markdown(text: str) -> tuple[str, list[JSON]]:
    """Legacy Markdown into (plain text, entities); an unclosed * _ ` is a 400 like Telegram's."""
    plain: list[str] = []
    entities: list[JSON] = []
    position = 0
    while position < len(text):
        char = text[position]
        link = _LEGACY_LINK.match(text, position) if char == "[" else None
        if char == "\\" and text[position + 1 : position + 2] in ("*", "_", "`", "["):
            plain.append(text[position + 1])
            position += 2
        elif link:
            offset = utf16_len("".join(plain))
            plain.append(link.group(1))
            entity = {"type": "text_link", "offset": offset, "length": utf16_len(link.group(1))}
            entities.append({**entity, "url": link.group(2)})
            position = link.end()
        elif char in _LEGACY_MARKS:
            mark = "```" if text.startswith("```", position) else char
            end = text.find(mark, position + len(mark))
            if end < 0:
                byte_offset = len(text[:position].encode())
                raise ParseError(
                    f"Can't find end of the entity starting at byte offset {byte_offset}"
                )
            inner = text[position + len(mark) : end]
            kind = "pre" if mark == "```" else _LEGACY_MARKS[char]
            offset = utf16_len("".join(plain))
            if inner:
                entities.append({"type": kind, "offset": offset, "length": utf16_len(inner)})
            plain.append(inner)
            position = end + len(mark)
        else:
            plain.append(char)
            position += 1
    return "".join(plain), entities


def render(text: str, parse_mode: str | None) -> tuple[str, list[JSON] | None]:
    """What the phone shows for text sent with parse_mode: (plain text, entities or None)."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        plain, entities = render_html(text)
        return plain, entities or None
    if mode == "markdown":
        plain, entities = render_markdown(text)
        return plain, entities or None
    if mode == "markdownv2":
        return render_markdown_v2(text), None
    return text, None


# ---------------------------------------------------------------------------------------------
# Accounting hooks inside the Application: when is an update fully handled?
# ---------------------------------------------------------------------------------------------


def _create_task_tasks(application: AnyApplication) -> set[asyncio.Task[Any]]:
    """Tasks the Application started with create_task (non-blocking handlers among them)."""
    return set(getattr(application, "_Application__create_task_tasks", set()))


class TrackingUpdateProcessor(BaseUpdateProcessor):
    """Wraps an Application's update processor and tells the fake server when an update is done.

    "Done" means the handler coroutine returned and every task the Application started with
    create_task meanwhile (block=False handlers) has finished too.
    """

    def __init__(self, inner: BaseUpdateProcessor, api: FakeBotApi, application: AnyApplication):
        super().__init__(inner.max_concurrent_updates)
        self.inner = inner
        self.api = api
        self.application = application
        self.watchers: set[asyncio.Task[None]] = set()

    async def report_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Error handler: record the exception for the phone that caused it, and log it."""
        error = context.error
        if error is None:
            return
        update_id = getattr(update, "update_id", None)
        self.api.record_bot_error(update_id, error)
        _LOGGER.error("bot raised while handling update %s", update_id, exc_info=error)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run the update through the wrapped processor, then report it processed."""
        before = _create_task_tasks(self.application)
        update_id = getattr(update, "update_id", None)
        if update_id is not None:
            self.api.mark_started(update_id)
        try:
            await self.inner.do_process_update(update, coroutine)
        finally:
            spawned = {
                task
                for task in _create_task_tasks(self.application) - before
                if not task.get_name().endswith("process_concurrent_update")
            }
            if update_id is not None:
                self._report_when_done(update_id, spawned)

    def _report_when_done(self, update_id: int, spawned: set[asyncio.Task[Any]]) -> None:
        if not spawned:
            self.api.mark_processed(update_id)
            return

        async def watch() -> None:
            await asyncio.wait(spawned)
            self.api.mark_processed(update_id)

        watcher = asyncio.create_task(watch(), name=f"fakebot:watch-update-{update_id}")
        self.watchers.add(watcher)
        watcher.add_done_callback(self.watchers.discard)

    async def initialize(self) -> None:
        """Delegate to the wrapped processor."""
        await self.inner.initialize()

    async def shutdown(self) -> None:
        """Delegate to the wrapped processor."""
        await self.inner.shutdown()


def install_tracking(application: AnyApplication, api: FakeBotApi) -> None:
    """Swap in a TrackingUpdateProcessor and an error handler that report to api."""
    processor = TrackingUpdateProcessor(application.update_processor, api, application)
    # No public setter exists; the slot is assignable and read on every update.
    application._update_processor = processor  # type: ignore[misc]
    application.add_error_handler(processor.report_error)


def remove_tracking(application: AnyApplication) -> None:
    """Undo install_tracking."""
    processor = application.update_processor
    if isinstance(processor, TrackingUpdateProcessor):
        application.remove_error_handler(processor.report_error)
        application._update_processor = processor.inner  # type: ignore[misc]


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
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_DEFAULT_DESCRIPTIONS = {
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


def _inline_markup(markup: Any) -> JSON | None:
    """The inline keyboard part of reply_markup (the only kind a Message carries back)."""
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        return markup
    return None


def _check_inline_keyboard(markup: JSON) -> None:
    """Validate buttons the way Telegram does for the mistakes bots actually make."""
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise bad_request("BUTTON_DATA_INVALID")
            if not button.get("text"):
                raise bad_request("text buttons are unallowed in the inline keyboard")


# ---------------------------------------------------------------------------------------------
# The fake server
# ---------------------------------------------------------------------------------------------


class FakeBotApi:
    """An in-process Telegram Bot API on 127.0.0.1 that PTB talks to over real HTTP."""

    def __init__(self, token: str = "123456:TEST-TOKEN", username: str = "ceping_test_bot"):
        self.token = token
        self.username = username
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user: JSON = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Ceping Test Bot",
            "username": username,
        }
        self.allow_multiple_pollers = False
        self.privacy_mode = True
        self.log: list[CallRecord] = []
        self.webhook: JSON = {}
        self.commands_by_scope: dict[tuple[str, str], list[JSON]] = {}
        self.default_menu_button: JSON = {"type": "default"}
        self.files: dict[str, StoredFile] = {}
        self.bot_errors: list[tuple[int | None, BaseException]] = []
        self._chats: dict[int, ChatState] = {}
        self._blocked: set[int] = set()
        self._faults: dict[str, list[Fault]] = {}
        self._updates: list[JSON] = []
        self._claimed: set[int] = set()
        self._next_update_id = 1
        self._allowed_updates: list[str] | None = None
        self._active_poll = 0
        self._processed: set[int] = set()
        self._windows: dict[int, tuple[int, int | None]] = {}
        self._errors_by_update: dict[int, list[BaseException]] = {}
        self._tracked_apps: list[Any] = []
        self._consumed: set[int] = set()
        self._unique = 0
        self._open_callback_queries: set[str] = set()
        self._changed = asyncio.Event()
        self._closing = False
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port: int | None = None
        self._methods: dict[str, tuple[str, Handler]] = self._method_table()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> FakeBotApi:
        """Bind host:port (0 = a free port) and serve until stop()."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_method)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        add_control_routes(app, self)
        # handler_cancellation: a long poll whose client went away (PTB stopping) must end now.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close the server and its connections (open long polls are answered empty)."""
        if self._runner:
            self._closing = True
            self._notify()
            await self._runner.cleanup()
            self._runner = None
            self._closing = False

    async def __aenter__(self) -> FakeBotApi:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """http://127.0.0.1:PORT"""
        if self.port is None:
            raise RuntimeError("FakeBotApi is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """For ApplicationBuilder().base_url(...)."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ApplicationBuilder().base_file_url(...)."""
        return f"{self.url}/file/bot"

    # -- change notification -----------------------------------------------------------------

    def _notify(self) -> None:
        """Wake every waiter (long polls, wait_for_request, phones)."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self, ready: Callable[[], Any], timeout: float, explain: Callable[[], str]
    ) -> Any:
        """Wait until ready() is truthy, re-checking on every change; TimeoutError otherwise."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = ready()
            if value:
                return value
            changed = self._changed
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(explain())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    # -- request log -------------------------------------------------------------------------

    @property
    def requests(self) -> list[Call]:
        """Every request so far as (method, params), getUpdates included."""
        return [Call(record.method, record.params) for record in self.log]

    def calls(self, method: str) -> list[JSON]:
        """Params of every request of one method, oldest first."""
        return [record.params for record in self.log if record.method == method]

    def count(self, method: str) -> int:
        """How many times the bot called method."""
        return sum(1 for record in self.log if record.method == method)

    def mark(self) -> int:
        """A position in the log, for wait_for_request(since=...) and phone windows."""
        return len(self.log)

    def describe_recent(self, limit: int = 12) -> str:
        """The last requests (without getUpdates) for error messages."""
        recent = [r for r in self.log if r.method != "getUpdates"][-limit:]
        if not recent:
            return "  (the bot has made no request besides getUpdates)"
        lines = []
        for record in recent:
            params = json.dumps(record.params, ensure_ascii=False, default=str)
            status = "" if record.status == 200 else f" -> {record.status} {record.description}"
            lines.append(f"  #{record.index} {record.method} {params[:200]}{status}")
        return "\n".join(lines)

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> CallRecord:
        """The oldest matching call (with status and result) no earlier wait returned.

        It returns as soon as the request reached the server: the bot's code after that call
        has not run yet.
        """

        def find() -> CallRecord | None:
            for record in self.log[since:]:
                if record.method != method or record.index in self._consumed:
                    continue
                if predicate is None or predicate(record.params):
                    self._consumed.add(record.index)
                    return record
            return None

        def explain() -> str:
            return (
                f"no {method} request{' matching the predicate' if predicate else ''} "
                f"within {timeout}s. Recent requests:\n{self.describe_recent()}"
            )

        return await self.wait_until(find, timeout, explain)

    async def wait_for_request(
        self,
        method: str,
        predicate: Callable[[JSON], bool] | None = None,
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> JSON:
        """Params of the oldest matching request no earlier wait returned (see wait_for_call)."""
        record = await self.wait_for_call(method, predicate, timeout, since=since)
        return record.params

    def _record(self, method: str, params: JSON) -> CallRecord:
        record = CallRecord(index=len(self.log), method=method, params=params)
        self.log.append(record)
        return record

    # -- fault injection and blocking --------------------------------------------------------

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of method fail with error_code (429 gets retry_after)."""
        if error_code == 429 and retry_after is None:
            retry_after = 3
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if error_code == 429
                else _DEFAULT_DESCRIPTIONS.get(error_code, "Bad Request")
            )
        fault = Fault(error_code, description, retry_after)
        self._faults.setdefault(method, []).extend([fault] * times)

    def drop_next(self, method: str, times: int = 1) -> None:
        """Make the next `times` calls of method lose the connection (PTB: NetworkError)."""
        fault = Fault(0, "connection dropped", drop_connection=True)
        self._faults.setdefault(method, []).extend([fault] * times)

    def block(self, user_id: int) -> None:
        """The user blocked the bot: sends to their private chat answer 403."""
        self._blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        """The user restarted the bot."""
        self._blocked.discard(user_id)

    # -- updates -----------------------------------------------------------------------------

    def push_update(self, update: JSON) -> int:
        """Queue a raw update for getUpdates (update_id assigned if missing); returns its id."""
        update = dict(update)
        update.setdefault("update_id", self._next_update_id)
        self._next_update_id = max(self._next_update_id, update["update_id"]) + 1
        self._updates.append(update)
        self._notify()
        return update["update_id"]

    def new_update_id(self) -> int:
        """Reserve an update id for an update delivered without getUpdates (phone via=app)."""
        update_id = self._next_update_id
        self._next_update_id += 1
        return update_id

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    def _confirm(self, offset: int | None) -> None:
        """Forget updates below offset (negative: keep only the last -offset updates)."""
        if not offset:
            return
        if offset < 0:
            self._updates = self._updates[offset:]
        else:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        self._notify()

    def _deliverable(self, limit: int) -> list[JSON]:
        allowed = self._allowed_updates
        batch = [
            u
            for u in self._updates
            if u["update_id"] not in self._claimed
            and (not allowed or any(kind in u for kind in allowed))
        ][:limit]
        if self.allow_multiple_pollers:
            self._claimed.update(u["update_id"] for u in batch)
        return batch

    # -- processing (fed by the harness's update processor) ---------------------------------

    def track(self, application: AnyApplication) -> None:
        """Have application report processed updates and handler errors here; idempotent."""
        if application not in self._tracked_apps:
            install_tracking(application, self)
            self._tracked_apps.append(application)

    def untrack(self, application: AnyApplication) -> None:
        """Undo track() (the harness calls it when the Application shuts down)."""
        if application in self._tracked_apps:
            remove_tracking(application)
            self._tracked_apps.remove(application)

    @property
    def tracking(self) -> bool:
        """Whether some Application reports processed updates to this server."""
        return bool(self._tracked_apps)

    def mark_started(self, update_id: int) -> None:
        """Called by the harness when the Application begins handling update_id."""
        self._windows[update_id] = (len(self.log), None)

    def mark_processed(self, update_id: int) -> None:
        """Called by the harness once the Application has fully handled update_id."""
        start, _ = self._windows.get(update_id, (0, None))
        self._windows[update_id] = (start, len(self.log))
        self._processed.add(update_id)
        self._notify()

    def calls_during(self, update_id: int) -> list[CallRecord]:
        """Requests made while a tracked Application handled update_id (any chat)."""
        start, end = self._windows.get(update_id, (0, None))
        return self.log[start:end]

    def record_bot_error(self, update_id: int | None, error: BaseException) -> None:
        """Called by the harness's error handler for every exception in the bot."""
        self.bot_errors.append((update_id, error))
        if update_id is not None:
            self._errors_by_update.setdefault(update_id, []).append(error)
        self._notify()

    def errors_for(self, update_id: int) -> list[BaseException]:
        """Exceptions the bot raised while handling update_id."""
        return list(self._errors_by_update.get(update_id, []))

    def is_processed(self, update_id: int) -> bool:
        """Whether a tracked Application finished update_id."""
        return update_id in self._processed

    async def wait_processed(self, update_id: int, timeout: float = 5.0) -> None:
        """Wait until a tracked Application has finished handling update_id."""

        def explain() -> str:
            where = (
                "still queued on the server (is the bot polling?)"
                if any(u["update_id"] == update_id for u in self._updates)
                else "delivered but not finished"
            )
            return (
                f"update {update_id} not processed within {timeout}s: {where}. "
                f"Recent requests:\n{self.describe_recent()}"
            )

        await self.wait_until(lambda: update_id in self._processed, timeout, explain)

    # -- chats and messages ------------------------------------------------------------------

    def open_chat(self, chat: JSON) -> ChatState:
        """Make a chat known (as after the user wrote to the bot); returns its state."""
        state = self._chats.get(chat["id"])
        if state is None:
            state = self._chats[chat["id"]] = ChatState(chat=dict(chat))
        return state

    def chat_state(self, chat_id: int) -> ChatState | None:
        """The server-side state of a chat, or None if nobody ever wrote from it."""
        return self._chats.get(chat_id)

    def chat(self, chat_id: int) -> list[JSON]:
        """The conversation as the phone shows it: edits applied, deleted messages gone."""
        state = self._chats.get(chat_id)
        if state is None:
            return []
        return [state.messages[mid] for mid in sorted(state.messages) if mid not in state.deleted]

    def is_blocked(self, user_id: int) -> bool:
        """Whether user_id blocked the bot."""
        return user_id in self._blocked

    def add_message(self, chat: JSON, sender: JSON, content: JSON) -> JSON:
        """Store a new message in chat from sender (a User) and return the Message JSON."""
        state = self.open_chat(chat)
        message: JSON = {
            "message_id": state.next_message_id,
            "from": dict(sender),
            "chat": dict(state.chat),
            "date": int(time.time()),
            **content,
        }
        state.next_message_id += 1
        state.messages[message["message_id"]] = message
        return message

    def unique(self, prefix: str) -> str:
        """A fresh identifier such as a file_id or callback query id."""
        self._unique += 1
        return f"{prefix}{self._unique}"

    def store_file(
        self, kind: str, data: bytes, file_name: str | None = None, mime_type: str | None = None
    ) -> StoredFile:
        """Keep bytes under a new file_id so getFile and downloads work."""
        file_id = self.unique(f"{kind}-file-")
        suffix = PurePosixPath(file_name).suffix if file_name else ""
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=self.unique("u"),
            file_path=f"{kind}s/file_{self._unique}{suffix}",
            data=data,
            file_name=file_name,
            mime_type=mime_type,
        )
        self.files[file_id] = stored
        return stored

    def file_bytes(self, file_id: str) -> bytes:
        """The content of a stored file."""
        return self.files[file_id].data

    def commands(self, scope: JSON | None = None, language_code: str = "") -> list[JSON]:
        """Commands stored by setMyCommands for exactly this scope and language."""
        return list(self.commands_by_scope.get(_scope_key(scope, language_code), []))

    # -- HTTP handling -----------------------------------------------------------------------

    async def _handle_method(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        params, files = await _read_params(request)
        name, handler = self._methods.get(
            request.match_info["method"].lower(), (request.match_info["method"], None)
        )
        record = self._record(name, params)
        try:
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            fault = self._take_fault(name)
            if fault and fault.drop_connection:
                return await _drop_connection(request, record)
            if fault:
                raise ApiError(fault.error_code, fault.description, fault.retry_after)
            record.result = await handler(params, files)
        except ApiError as error:
            record.status, record.description = error.error_code, error.description
            self._notify()
            return web.json_response(error.payload(), status=error.error_code)
        self._notify()
        return web.json_response({"ok": True, "result": record.result}, dumps=_dumps)

    def _take_fault(self, method: str) -> Fault | None:
        queue = self._faults.get(method)
        return queue.pop(0) if queue else None

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.Response(status=401, text="Unauthorized")
        path = request.match_info["path"]
        for stored in self.files.values():
            if stored.file_path == path:
                return web.Response(body=stored.data, content_type="application/octet-stream")
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    def _method_table(self) -> dict[str, tuple[str, Handler]]:
        methods: dict[str, Handler] = {
            "getMe": self._get_me,
            "logOut": self._ok,
            "close": self._ok,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageCaption": self._edit_message_caption,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
            "sendChatAction": self._send_chat_action,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "getChat": self._get_chat,
        }
        return {name.lower(): (name, handler) for name, handler in methods.items()}

    # -- methods: bot and polling ------------------------------------------------------------

    async def _ok(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        return True

    async def _get_me(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSON, files: dict[str, UploadedFile]) -> list[JSON]:
        if self.webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if "allowed_updates" in params:
            self._allowed_updates = list(params["allowed_updates"] or []) or None
        self._confirm(params.get("offset"))
        self._active_poll += 1
        ticket = self._active_poll
        self._notify()  # terminates an older long poll (409 below) unless pollers may coexist

        def ready() -> list[list[JSON]] | None:
            if not self.allow_multiple_pollers and self._active_poll != ticket:
                raise ApiError(409, _DEFAULT_DESCRIPTIONS[409])
            if self._closing:
                return [[]]  # answer open polls empty so the server can shut down at once
            batch = self._deliverable(limit)
            return [batch] if batch else None

        try:
            (batch,) = await self.wait_until(ready, timeout, lambda: "")
        except TimeoutError:
            return []
        return batch

    async def _set_webhook(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        self.webhook = {
            "url": params.get("url", ""),
            "secret_token": params.get("secret_token"),
            "allowed_updates": params.get("allowed_updates"),
        }
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _delete_webhook(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        self.webhook = {}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        info: JSON = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook.get("allowed_updates"):
            info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    # -- methods: messages -------------------------------------------------------------------

    def _target_chat(self, params: JSON) -> ChatState:
        """The chat a send/edit addresses; 400 if unknown, 403 if the user blocked the bot."""
        chat_id = params.get("chat_id")
        if chat_id is None:
            raise bad_request("chat_id is empty")
        try:
            chat_id = int(chat_id)
        except (TypeError, ValueError) as error:
            raise bad_request("chat not found") from error
        state = self._chats.get(chat_id)
        if state is None:
            raise bad_request("chat not found")
        if chat_id in self._blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return state

    def _message_content(self, text: str, params: JSON, text_key: str = "text") -> JSON:
        """text/caption plus entities as Telegram stores them after parse_mode."""
        entities_key = "entities" if text_key == "text" else "caption_entities"
        try:
            plain, entities = render(text, params.get("parse_mode"))
        except ParseError as error:
            raise bad_request(f"can't parse entities: {error}") from error
        content: JSON = {text_key: plain}
        given = params.get(entities_key)
        if given or entities:
            content[entities_key] = given or entities
        return content

    def _apply_markup(self, state: ChatState, message: JSON, markup: Any) -> None:
        """Attach an inline keyboard to message, or change the chat's reply keyboard."""
        if not isinstance(markup, dict):
            return
        if "inline_keyboard" in markup:
            _check_inline_keyboard(markup)
            message["reply_markup"] = markup
        elif "keyboard" in markup:
            state.reply_keyboard = markup
        elif markup.get("remove_keyboard"):
            state.reply_keyboard = None

    def _bot_message(self, state: ChatState, content: JSON, params: JSON) -> JSON:
        """Store a message from the bot (with reply_markup/reply_to handling) and return it."""
        markup = params.get("reply_markup")
        inline = _inline_markup(markup)
        if inline:
            _check_inline_keyboard(inline)
        reply_parameters = params.get("reply_parameters") or {}
        reply_to = params.get("reply_to_message_id") or reply_parameters.get("message_id")
        replied = state.messages.get(reply_to) if reply_to not in state.deleted else None
        may_lose_reply = params.get("allow_sending_without_reply") or reply_parameters.get(
            "allow_sending_without_reply"
        )
        if reply_to and replied is None and not may_lose_reply:
            raise bad_request("message to be replied not found")
        message = self.add_message(state.chat, self.bot_user, content)
        if replied is not None:
            message["reply_to_message"] = dict(replied)
        self._apply_markup(state, message, markup)
        return message

    async def _send_message(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        state = self._target_chat(params)
        text = str(params.get("text") or "")
        if not text.strip():
            raise bad_request("message text is empty")
        content = self._message_content(text, params)
        if utf16_len(content["text"]) > 4096:
            raise bad_request("message is too long")
        return self._bot_message(state, content, params)

    def _editable(self, params: JSON, verb: str = "edit") -> tuple[ChatState, JSON]:
        if params.get("inline_message_id"):
            raise bad_request(f"message to {verb} not found")
        state = self._target_chat(params)
        message_id = params.get("message_id")
        message = state.messages.get(message_id) if isinstance(message_id, int) else None
        if message is None or message_id in state.deleted:
            raise bad_request(f"message to {verb} not found")
        if verb == "edit" and message["from"].get("id") != self.bot_id:
            raise bad_request("message can't be edited")
        return state, message

    def _replace(
        self,
        state: ChatState,
        message: JSON,
        changes: JSON,
        markup: Any,
        replaced: tuple[str, ...] = (),
    ) -> JSON:
        """Apply an edit in place; 400 'message is not modified' when nothing changes."""
        new_markup = _inline_markup(markup)
        if new_markup:
            _check_inline_keyboard(new_markup)
        dropped = ("reply_markup", "edit_date", *replaced)
        edited = {k: v for k, v in message.items() if k not in dropped}
        edited.update(changes)
        if new_markup:
            edited["reply_markup"] = new_markup
        comparable = ("text", "entities", "caption", "caption_entities", "reply_markup")
        if all(edited.get(key) == message.get(key) for key in comparable):
            raise ApiError(400, _NOT_MODIFIED)
        edited["edit_date"] = int(time.time())
        state.messages[message["message_id"]] = edited
        return edited

    async def _edit_message_text(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        state, message = self._editable(params)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        text = str(params.get("text") or "")
        if not text.strip():
            raise bad_request("message text is empty")
        changes = self._message_content(text, params)
        markup = params.get("reply_markup")
        return self._replace(state, message, changes, markup, ("text", "entities"))

    async def _edit_message_caption(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        state, message = self._editable(params)
        if "text" in message:
            raise bad_request("there is no caption in the message to edit")
        changes = self._media_caption(params)
        markup = params.get("reply_markup")
        return self._replace(state, message, changes, markup, ("caption", "caption_entities"))

    async def _edit_message_reply_markup(
        self, params: JSON, files: dict[str, UploadedFile]
    ) -> JSON:
        state, message = self._editable(params)
        return self._replace(state, message, {}, params.get("reply_markup"))

    async def _delete_message(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        state, message = self._editable(params, verb="delete")
        state.deleted.add(message["message_id"])
        return True

    async def _answer_callback_query(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        query_id = params.get("callback_query_id")
        if query_id not in self._open_callback_queries:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._open_callback_queries.discard(query_id)
        return True

    def open_callback_query(self, query_id: str) -> None:
        """Register a callback query id a phone sent, so answerCallbackQuery accepts it once."""
        self._open_callback_queries.add(query_id)

    async def _get_chat(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        state = self._chats.get(_as_int(params.get("chat_id")))
        if state is None:
            raise bad_request("chat not found")
        gifts = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
        return {
            **state.chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": dict.fromkeys((*gifts, "gifts_from_channels"), True),
        }

    async def _send_chat_action(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        self._target_chat(params)
        return True

    # -- methods: files ----------------------------------------------------------------------

    def _incoming_file(
        self, params: JSON, files: dict[str, UploadedFile], field_name: str
    ) -> StoredFile:
        """The uploaded part, attach:// reference or existing file_id of a send* call."""
        value = params.get(field_name)
        upload = files.get(field_name)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
        if upload is not None:
            return self.store_file(field_name, upload.data, upload.filename, upload.content_type)
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            raise bad_request("failed to get HTTP URL content")
        raise bad_request(f"wrong file identifier/HTTP URL specified ({field_name})")

    def _media_caption(self, params: JSON) -> JSON:
        caption = params.get("caption")
        if not caption:
            return {}
        content = self._message_content(str(caption), params, "caption")
        if utf16_len(content["caption"]) > 1024:
            raise bad_request("message caption is too long")
        return content

    async def _send_document(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        state = self._target_chat(params)
        stored = self._incoming_file(params, files, "document")
        document: JSON = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
        }
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        content = {"document": document, **self._media_caption(params)}
        return self._bot_message(state, content, params)

    async def _send_photo(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        state = self._target_chat(params)
        stored = self._incoming_file(params, files, "photo")
        content = {"photo": photo_sizes(stored), **self._media_caption(params)}
        return self._bot_message(state, content, params)

    async def _get_file(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        file_id = str(params.get("file_id"))
        # a photo's thumbnail id ends in "-s"; both sizes share the stored bytes
        stored = self.files.get(file_id) or self.files.get(file_id.removesuffix("-s"))
        if stored is None:
            raise bad_request("invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }

    # -- methods: commands and menu ----------------------------------------------------------

    async def _set_my_commands(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request('parameter "commands" is required')
        for command in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(command.get("command", ""))):
                raise bad_request("BOT_COMMAND_INVALID")
        key = _scope_key(params.get("scope"), params.get("language_code") or "")
        self.commands_by_scope[key] = commands
        return True

    async def _get_my_commands(self, params: JSON, files: dict[str, UploadedFile]) -> list[JSON]:
        return self.commands(params.get("scope"), params.get("language_code") or "")

    async def _delete_my_commands(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        key = _scope_key(params.get("scope"), params.get("language_code") or "")
        self.commands_by_scope.pop(key, None)
        return True

    async def _set_chat_menu_button(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        button = params.get("menu_button") or {"type": "default"}
        if params.get("chat_id") is None:
            self.default_menu_button = button
        else:
            self._target_chat(params).menu_button = button
        return True

    async def _get_chat_menu_button(self, params: JSON, files: dict[str, UploadedFile]) -> JSON:
        if params.get("chat_id") is None:
            return self.default_menu_button
        return self._target_chat(params).menu_button or self.default_menu_button

    # -- phones ------------------------------------------------------------------------------

    def user(
        self,
        user_id: int,
        first_name: str = "张三",
        language_code: str = "zh-hans",
        username: str | None = None,
    ) -> Phone:
        """A simulated Telegram user (see tests.fakebot.phone.Phone)."""
        from tests.fakebot.phone import Phone

        return Phone(self, user_id, first_name, language_code, username)


def _as_int(value: Any) -> int | None:
    """An int chat/message id from a parameter, or None if it is not one."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _scope_key(scope: Any, language_code: str) -> tuple[str, str]:
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


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def _read_params(request: web.Request) -> tuple[JSON, dict[str, UploadedFile]]:
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


async def _drop_connection(request: web.Request, record: CallRecord) -> web.StreamResponse:
    """Close the socket without answering, like a network failure mid-request."""
    record.status, record.description = 0, "connection dropped"
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=204)  # never reaches the client: the socket is gone


# ---------------------------------------------------------------------------------------------
# Control endpoints for a server running in its own process (python -m tests.fakebot)
# ---------------------------------------------------------------------------------------------


def add_control_routes(app: web.Application, api: FakeBotApi) -> None:
    """/_fake/* endpoints so another process can inject updates and read what the bot did.

    POST /_fake/message {"user_id", "text", "first_name"?} (or a list of them) -> update ids;
    POST /_fake/updates raw update(s); POST /_fake/tap {"user_id", "text"} or
    {"user_id", "callback_data", "message_id"?}; POST /_fake/contact {"user_id",
    "phone_number"?}; GET /_fake/reply?update_id=N&shown=1&contains=&photos=&documents=
    holds until the bot answered that update (see RemoteReplies);
    GET /_fake/requests?method=&since=; GET /_fake/stats; GET /_fake/chat/<id>;
    GET /_fake/wait?method=sendMessage&count=N&timeout=30 holds the request until the bot
    has made N such calls in total (408 on timeout).
    """
    replies = RemoteReplies(api)

    async def push(request: web.Request) -> web.Response:
        body = await request.json()
        updates = body if isinstance(body, list) else [body]
        for update in updates:
            query = update.get("callback_query")
            if isinstance(query, dict) and "id" in query:
                # A pushed tap is answerable once, as a Phone's tap is.
                api.open_callback_query(str(query["id"]))
        ids = [replies.push(u) for u in updates]
        return web.json_response({"ok": True, "result": ids})

    async def message(request: web.Request) -> web.Response:
        body = await request.json()
        texts = body if isinstance(body, list) else [body]
        ids = [replies.pushed(_remote_phone(api, m).send_nowait, str(m["text"])) for m in texts]
        return web.json_response({"ok": True, "result": ids if isinstance(body, list) else ids[0]})

    async def tap(request: web.Request) -> web.Response:
        body = await request.json()
        phone = _remote_phone(api, body)
        try:
            query = _remote_tap(api, phone, body)
        except LookupError as error:
            return web.json_response({"ok": False, "description": str(error)}, status=400)
        api.open_callback_query(query["id"])
        return web.json_response({"ok": True, "result": replies.push({"callback_query": query})})

    async def contact(request: web.Request) -> web.Response:
        body = await request.json()
        phone = _remote_phone(api, body)
        contact = {
            "phone_number": str(body.get("phone_number") or phone.phone_number),
            "first_name": phone.first_name,
            "user_id": phone.user_id,
        }
        message = api.add_message(phone.private_chat, phone.user, {"contact": contact})
        return web.json_response({"ok": True, "result": replies.push({"message": message})})

    async def reply(request: web.Request) -> web.Response:
        query = request.query
        try:
            result = await replies.wait(
                int(query["update_id"]),
                shown=int(query.get("shown", 1)),
                contains=query.get("contains"),
                photos=int(query.get("photos", 0)),
                documents=int(query.get("documents", 0)),
                timeout=float(query.get("timeout", 30)),
            )
        except TimeoutError as error:
            return web.json_response({"ok": False, "description": str(error)}, status=408)
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    async def wait(request: web.Request) -> web.Response:
        method = request.query["method"]
        count = int(request.query.get("count", 1))
        timeout = float(request.query.get("timeout", 30))
        try:
            await api.wait_until(
                lambda: api.count(method) >= count, timeout, lambda: f"{method} < {count}"
            )
        except TimeoutError as error:
            return web.json_response({"ok": False, "description": str(error)}, status=408)
        return web.json_response({"ok": True, "result": api.count(method)})

    async def requests(request: web.Request) -> web.Response:
        since = int(request.query.get("since", 0))
        method = request.query.get("method")
        rows = [_record_json(r) for r in api.log[since:] if method in (None, r.method)]
        return web.json_response({"ok": True, "result": rows}, dumps=_dumps)

    async def stats(request: web.Request) -> web.Response:
        counts: dict[str, int] = {}
        for record in api.log:
            counts[record.method] = counts.get(record.method, 0) + 1
        result = {
            "requests": counts,
            "pending_updates": len(api.pending_updates),
            "log_size": api.mark(),
        }
        return web.json_response({"ok": True, "result": result})

    async def chat(request: web.Request) -> web.Response:
        messages = api.chat(int(request.match_info["chat_id"]))
        return web.json_response({"ok": True, "result": messages}, dumps=_dumps)

    app.router.add_post("/_fake/updates", push)
    app.router.add_post("/_fake/message", message)
    app.router.add_post("/_fake/tap", tap)
    app.router.add_post("/_fake/contact", contact)
    app.router.add_get("/_fake/reply", reply)
    app.router.add_get("/_fake/requests", requests)
    app.router.add_get("/_fake/stats", stats)
    app.router.add_get("/_fake/wait", wait)
    app.router.add_get("/_fake/chat/{chat_id}", chat)


def _remote_phone(api: FakeBotApi, body: JSON) -> Phone:
    """The Phone a control request speaks for (user_id, first_name?, language_code?)."""
    return api.user(
        int(body["user_id"]),
        first_name=str(body.get("first_name", "张三")),
        language_code=str(body.get("language_code", "zh-hans")),
    )


def _remote_tap(api: FakeBotApi, phone: Phone, body: JSON) -> JSON:
    """A callback query for a tap on the newest bot message with button body["text"].

    Or, with body["callback_data"], a forged tap on body["message_id"] (default: the newest
    bot message). LookupError when there is no such button or message.
    """
    bot_messages = [m for m in api.chat(phone.user_id) if m["from"]["id"] == api.bot_id]
    text, data = body.get("text"), body.get("callback_data")
    message: JSON | None = None
    if text is not None:
        message, data = _newest_button(bot_messages, str(text))
    else:
        wanted = _as_int(body.get("message_id"))
        candidates = [m for m in bot_messages if wanted in (None, m["message_id"])]
        message = candidates[-1] if candidates else None
    if message is None or data is None:
        raise LookupError(f"nothing to tap for {body}; the bot's last message: {bot_messages[-1:]}")
    return {
        "id": str(4_000_000_000_000_000 + int(api.unique(""))),
        "from": phone.user,
        "message": message,
        "chat_instance": str(phone.user_id),
        "data": str(data),
    }


def _newest_button(messages: list[JSON], text: str) -> tuple[JSON | None, str | None]:
    """The newest message with a callback button labelled text, and that button's data."""
    for message in reversed(messages):
        for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
            for button in row:
                if button.get("text") == text and "callback_data" in button:
                    return message, str(button["callback_data"])
    return None, None


def _record_json(record: CallRecord) -> JSON:
    """A logged call for a control client: method, params, status, result, description."""
    return {
        "index": record.index,
        "method": record.method,
        "params": record.params,
        "status": record.status,
        "result": record.result,
        "description": record.description,
    }


def _finished(record: CallRecord) -> bool:
    """Whether the fake has answered this call (the record is made before the answer)."""
    return record.result is not None or record.description is not None


_SHOWN_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "editMessageText", "editMessageCaption"}
)


class RemoteReplies:
    """What the bot did about each update pushed through the control endpoints.

    A bot in another process cannot be tracked, so "done" is what the caller expects to
    see: the update fetched, a tap's callback query answered, at least ``shown`` messages
    sent or edited in the update's chat (``photos``/``documents`` of them, one containing
    ``contains``), all counted from the moment the update was pushed. Drive one phone at a
    time and name the last thing the bot shows, and the reply is complete.
    """

    def __init__(self, api: FakeBotApi) -> None:
        self.api = api
        self.pushed_at: dict[int, int] = {}
        self.updates: dict[int, JSON] = {}

    def push(self, update: JSON) -> int:
        """Queue a raw update, remembering where the log stood."""
        since = self.api.mark()
        update_id = self.api.push_update(update)
        self.pushed_at[update_id] = since
        self.updates[update_id] = update
        return update_id

    def pushed(self, send_nowait: Callable[[str], int], text: str) -> int:
        """Queue a Phone's text with send_nowait and remember its update like push() does."""
        since = self.api.mark()
        update_id = send_nowait(text)
        self.pushed_at[update_id] = since
        pending = next((u for u in self.api.pending_updates if u["update_id"] == update_id), {})
        self.updates[update_id] = pending
        return update_id

    def records(self, update_id: int) -> list[CallRecord]:
        """Finished visible calls about this update's chat (or its tap) since its push."""
        chat_id, query_id = _chat_and_query(self.updates.get(update_id, {}))
        since = self.pushed_at.get(update_id, 0)
        return [
            r
            for r in self.api.log[since:]
            if _finished(r) and _concerns_remote(r, chat_id, query_id)
        ]

    async def wait(
        self,
        update_id: int,
        *,
        shown: int = 1,
        contains: str | None = None,
        photos: int = 0,
        documents: int = 0,
        timeout: float = 30.0,
    ) -> JSON:
        """Hold until the reply looks complete (see the class docstring); its calls and screen."""
        _, query_id = _chat_and_query(self.updates.get(update_id, {}))

        def complete() -> bool:
            if any(u["update_id"] == update_id for u in self.api.pending_updates):
                return False
            records = self.records(update_id)
            messages = [r.result for r in records if r.method in _SHOWN_METHODS and r.status == 200]
            messages = [m for m in messages if isinstance(m, dict)]
            answered = query_id is None or any(r.method == "answerCallbackQuery" for r in records)
            return (
                answered
                and len(messages) >= shown
                and sum("photo" in m for m in messages) >= photos
                and sum("document" in m for m in messages) >= documents
                and (contains is None or any(contains in _shown_text(m) for m in messages))
            )

        def explain() -> str:
            return (
                f"update {update_id}: no complete reply within {timeout}s "
                f"(shown>={shown}, contains={contains!r}, photos>={photos}, "
                f"documents>={documents}). Recent requests:\n{self.api.describe_recent()}"
            )

        await self.api.wait_until(complete, timeout, explain)
        return {
            "update_id": update_id,
            "records": [_record_json(r) for r in self.records(update_id)],
        }


def _chat_and_query(update: JSON) -> tuple[int | None, str | None]:
    """The private chat an update came from and, for a tap, its callback query id."""
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message") or {}
        chat_id = (message.get("chat") or {}).get("id", (query.get("from") or {}).get("id"))
        return _as_int(chat_id), str(query.get("id"))
    message = update.get("message") or {}
    return _as_int((message.get("chat") or {}).get("id")), None


def _concerns_remote(record: CallRecord, chat_id: int | None, query_id: str | None) -> bool:
    """Whether a call is one the user of chat_id (or of this tap) can see."""
    if record.method not in VISIBLE_METHODS:
        return False
    if record.method == "answerCallbackQuery":
        return query_id is not None and record.params.get("callback_query_id") == query_id
    return chat_id is not None and _as_int(record.params.get("chat_id")) == chat_id


def _shown_text(message: JSON) -> str:
    """A message's text or caption, and a document's file name, for `contains`."""
    document = message.get("document") or {}
    return f"{message.get('text', message.get('caption', ''))}\n{document.get('file_name', '')}"
