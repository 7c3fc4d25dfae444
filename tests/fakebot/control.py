"""Control endpoints for a fake Bot API running in its own process (python -m tests.fakebot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from tests.fakebot.records import JSON, VISIBLE_METHODS, CallRecord, as_int, dumps

if TYPE_CHECKING:
    from tests.fakebot.phone import Phone

if TYPE_CHECKING:
    from tests.fakebot.server import FakeBotApi


def add_control_routes(app: web.Application, api: FakeBotApi) -> None:
    """/_fake/* endpoints so another process can inject updates and read what the bot did.

    POST /_fake/message {"user_id", "text", "first_name"?} (or a list of them) -> update ids;
    POST /_fake/updates raw update(s); POST /_fake/tap {"user_id", "text"} or
    {"user_id", "callback_data", "message_id"?}; POST /_fake/contact {"user_id",
    "phone_number"?}; GET /_fake/reply?update_id=N&shown=1&contains=&photos=&documents=
    holds until the bot answered that update (see RemoteReplies);
    GET /_fake/requests?method=&since=; GET /_fake/stats; GET /_fake/chat/<id>;
    GET /_fake/webhook: the webhook's URL and every update it took, with the worker;
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
        return web.json_response({"ok": True, "result": result}, dumps=dumps)

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
        return web.json_response({"ok": True, "result": rows}, dumps=dumps)

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

    async def webhook(request: web.Request) -> web.Response:
        pusher = api.webhook_pusher
        result = {
            "url": api.webhook.get("url", ""),
            "delivered": [[d.update_id, d.worker] for d in pusher.deliveries],
            "per_worker": pusher.per_worker(),
            "failures": pusher.failures,
        }
        return web.json_response({"ok": True, "result": result})

    async def chat(request: web.Request) -> web.Response:
        messages = api.chat(int(request.match_info["chat_id"]))
        return web.json_response({"ok": True, "result": messages}, dumps=dumps)

    app.router.add_post("/_fake/updates", push)
    app.router.add_post("/_fake/message", message)
    app.router.add_post("/_fake/tap", tap)
    app.router.add_post("/_fake/contact", contact)
    app.router.add_get("/_fake/reply", reply)
    app.router.add_get("/_fake/requests", requests)
    app.router.add_get("/_fake/stats", stats)
    app.router.add_get("/_fake/wait", wait)
    app.router.add_get("/_fake/chat/{chat_id}", chat)
    app.router.add_get("/_fake/webhook", webhook)


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
        wanted = as_int(body.get("message_id"))
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
        return as_int(chat_id), str(query.get("id"))
    message = update.get("message") or {}
    return as_int((message.get("chat") or {}).get("id")), None


def _concerns_remote(record: CallRecord, chat_id: int | None, query_id: str | None) -> bool:
    """Whether a call is one the user of chat_id (or of this tap) can see."""
    if record.method not in VISIBLE_METHODS:
        return False
    if record.method == "answerCallbackQuery":
        return query_id is not None and record.params.get("callback_query_id") == query_id
    return chat_id is not None and as_int(record.params.get("chat_id")) == chat_id


def _shown_text(message: JSON) -> str:
    """A message's text or caption, and a document's file name, for `contains`."""
    document = message.get("document") or {}
    return f"{message.get('text', message.get('caption', ''))}\n{document.get('file_name', '')}"
