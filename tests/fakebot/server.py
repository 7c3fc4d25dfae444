"""A fake Telegram Bot API server (aiohttp) that the real python-telegram-bot talks to over HTTP.

Faithful where tests depend on it: request decoding as PTB sends it (form/multipart with
JSON-encoded values), long-polling getUpdates with offsets and 409 conflicts, Message objects,
Telegram's error texts and HTTP codes, HTML/Markdown parse_mode, and files. See README.md.

This module holds the server's state and HTTP handling; the Bot API methods are
``methods``, text rendering ``text``, records and request decoding ``records``, the
Application hooks ``tracking`` and the cross-process control endpoints ``control``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakebot.records import (
    DEFAULT_DESCRIPTIONS,
    JSON,
    AnyApplication,
    ApiError,
    Call,
    CallRecord,
    ChatState,
    Fault,
    Handler,
    StoredFile,
    drop_connection,
    dumps,
    read_params,
    scope_key,
)
from tests.fakebot.tracking import install_tracking, remove_tracking

if TYPE_CHECKING:
    from tests.fakebot.phone import Phone
from tests.fakebot.control import add_control_routes
from tests.fakebot.methods import BotMethods
from tests.fakebot.webhook import WebhookPusher

# ---------------------------------------------------------------------------------------------
# The fake server
# ---------------------------------------------------------------------------------------------


class FakeBotApi(BotMethods):
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
        self.open_chats = False
        """Whether a private chat nobody wrote from yet counts as open (benches' fan-out)."""
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
        self.webhook_pusher = WebhookPusher(self)

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
        await self.webhook_pusher.stop()
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

    def notify(self) -> None:
        """Wake every waiter (for the webhook pusher)."""
        self._notify()

    def changed_event(self) -> asyncio.Event:
        """The event the next change sets."""
        return self._changed

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
                else DEFAULT_DESCRIPTIONS.get(error_code, "Bad Request")
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

    def confirm_update(self, update_id: int) -> None:
        """Forget one update: the webhook answered it."""
        self._updates = [u for u in self._updates if u["update_id"] != update_id]
        self._notify()

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
        return list(self.commands_by_scope.get(scope_key(scope, language_code), []))

    # -- HTTP handling -----------------------------------------------------------------------

    async def _handle_method(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        params, files = await read_params(request)
        name, handler = self._methods.get(
            request.match_info["method"].lower(), (request.match_info["method"], None)
        )
        record = self._record(name, params)
        try:
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            fault = self._take_fault(name)
            if fault and fault.drop_connection:
                return await drop_connection(request, record)
            if fault:
                raise ApiError(fault.error_code, fault.description, fault.retry_after)
            record.result = await handler(params, files)
        except ApiError as error:
            record.status, record.description = error.error_code, error.description
            self._notify()
            return web.json_response(error.payload(), status=error.error_code)
        self._notify()
        return web.json_response({"ok": True, "result": record.result}, dumps=dumps)

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
