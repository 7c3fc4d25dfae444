"""Simulated Telegram users: a Phone sends updates to the bot and shows what the bot did."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from telegram import Update

from tests.fakebot.records import JSON, VISIBLE_METHODS, AnyApplication, CallRecord, photo_sizes
from tests.fakebot.text import command_entities

if TYPE_CHECKING:
    from tests.fakebot.server import FakeBotApi

DEFAULT_TIMEOUT = 5.0
_FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00fake-photo\xff\xd9"
_FAKE_OGG = b"OggS\x00\x02fake-voice"
_FAKE_WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8 fake-sticker"


class PhoneError(AssertionError):
    """The simulated user cannot do that (no such button, no keyboard, ...)."""


class BotCrashed(AssertionError):
    """A handler raised while processing the phone's update (see Reply.errors)."""


@dataclass(frozen=True)
class Screen:
    """What the phone shows last: the latest bot message's text and its inline keyboard."""

    text: str
    keyboard: list[list[str]] = field(default_factory=list)

    def __str__(self) -> str:
        rows = "\n".join(" | ".join(f"[{b}]" for b in row) for row in self.keyboard)
        return f"{self.text}\n{rows}" if rows else self.text


def message_text(message: JSON) -> str:
    """Text of a message, or its caption for media."""
    return str(message.get("text", message.get("caption", "")))


def inline_rows(message: JSON) -> list[list[JSON]]:
    """Inline keyboard buttons of a message (JSON InlineKeyboardButton objects) by row."""
    markup = message.get("reply_markup") or {}
    return [list(row) for row in markup.get("inline_keyboard", [])]


def keyboard_texts(message: JSON) -> list[list[str]]:
    """Inline keyboard of a message as rows of button texts."""
    return [[str(button["text"]) for button in row] for row in inline_rows(message)]


@dataclass
class Reply:
    """What the bot did in reaction to one update, in order (only calls a user can see)."""

    update_id: int
    records: list[CallRecord]
    errors: list[BaseException] = field(default_factory=list)

    def _results(self, *methods: str) -> list[JSON]:
        return [
            r.result
            for r in self.records
            if r.method in methods and r.status == 200 and isinstance(r.result, dict)
        ]

    @property
    def messages(self) -> list[JSON]:
        """New messages the bot sent (text, photo or document), as Telegram returned them."""
        return self._results("sendMessage", "sendPhoto", "sendDocument")

    @property
    def edits(self) -> list[JSON]:
        """Messages as they were after each successful edit."""
        return self._results("editMessageText", "editMessageCaption", "editMessageReplyMarkup")

    @property
    def shown(self) -> list[JSON]:
        """Sent and edited messages, in the order the bot produced them."""
        return self._results(
            "sendMessage",
            "sendPhoto",
            "sendDocument",
            "editMessageText",
            "editMessageCaption",
            "editMessageReplyMarkup",
        )

    @property
    def texts(self) -> list[str]:
        """Texts (or captions) of sent and edited messages, in order."""
        return [message_text(m) for m in self.shown]

    @property
    def text(self) -> str:
        """All texts joined by newlines (handy for `in` assertions)."""
        return "\n".join(self.texts)

    @property
    def last(self) -> JSON | None:
        """The last message the bot sent or edited, or None."""
        shown = self.shown
        return shown[-1] if shown else None

    @property
    def keyboard(self) -> list[list[str]]:
        """Inline keyboard (rows of texts) of the last message sent or edited."""
        return keyboard_texts(self.last) if self.last else []

    @property
    def buttons(self) -> list[str]:
        """Inline button texts of the last message sent or edited, flattened."""
        return [text for row in self.keyboard for text in row]

    @property
    def deleted(self) -> list[int]:
        """Message ids the bot deleted."""
        return [
            int(r.params["message_id"])
            for r in self.records
            if r.method == "deleteMessage" and r.status == 200
        ]

    @property
    def documents(self) -> list[JSON]:
        """Document objects the bot sent."""
        return [m["document"] for m in self.messages if "document" in m]

    @property
    def photos(self) -> list[JSON]:
        """Photo messages the bot sent."""
        return [m for m in self.messages if "photo" in m]

    @property
    def answer(self) -> JSON | None:
        """Params of the bot's answerCallbackQuery for a tap (None: the spinner never stops)."""
        answers = [r.params for r in self.records if r.method == "answerCallbackQuery"]
        return answers[-1] if answers else None

    @property
    def alert(self) -> str | None:
        """Text of a show_alert answer (a modal dialog on the phone)."""
        answer = self.answer
        return str(answer.get("text", "")) if answer and answer.get("show_alert") else None

    @property
    def toast(self) -> str | None:
        """Text of a non-alert answer (a short toast on the phone)."""
        answer = self.answer
        if answer and not answer.get("show_alert") and answer.get("text"):
            return str(answer["text"])
        return None

    @property
    def failed(self) -> list[CallRecord]:
        """Visible calls the server refused (e.g. 400 not modified, 403 blocked)."""
        return [r for r in self.records if r.status != 200]

    def __bool__(self) -> bool:
        return bool(self.records)

    def __iter__(self) -> Iterator[str]:
        return iter(self.texts)


class Phone:
    """One Telegram user holding a phone: sends updates, taps buttons, reads the screen."""

    def __init__(
        self,
        api: FakeBotApi,
        user_id: int,
        first_name: str = "张三",
        language_code: str = "zh-hans",
        username: str | None = None,
    ):
        self.api = api
        self.user_id = user_id
        self.first_name = first_name
        self.language_code = language_code
        self.username = username
        self.phone_number = f"86138{user_id % 10**8:08d}"
        self._queued_at: dict[int, int] = {}

    # -- identity ----------------------------------------------------------------------------

    @property
    def user(self) -> JSON:
        """This user as a Telegram User object."""
        user: JSON = {
            "id": self.user_id,
            "is_bot": False,
            "first_name": self.first_name,
            "language_code": self.language_code,
        }
        if self.username:
            user["username"] = self.username
        return user

    @property
    def private_chat(self) -> JSON:
        """The private chat with the bot as a Telegram Chat object."""
        chat: JSON = {"id": self.user_id, "type": "private", "first_name": self.first_name}
        if self.username:
            chat["username"] = self.username
        return chat

    def start_chat(self) -> None:
        """Make the private chat known to the server without sending (as if /start long ago)."""
        self.api.open_chat(self.private_chat)

    # -- sending -----------------------------------------------------------------------------

    async def send(
        self,
        text: str,
        *,
        reply_to: int | None = None,
        via: AnyApplication | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        raise_errors: bool = True,
    ) -> Reply:
        """Send a text (commands get bot_command entities) and return what the bot did.

        reply_to=message_id sends it as a reply to that message (e.g. after a ForceReply).
        """
        content = self._with_reply(self.user_id, _text_content(text), reply_to)
        return await self._deliver_message(self.private_chat, content, via, timeout, raise_errors)

    def send_nowait(self, text: str) -> int:
        """Queue a text for getUpdates without waiting; returns the update_id (see collect)."""
        since = self.api.mark()
        message = self.api.add_message(self.private_chat, self.user, _text_content(text))
        update_id = self.api.push_update({"message": message})
        self._queued_at[update_id] = since
        return update_id

    async def collect(
        self,
        update_id: int,
        *,
        since: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        raise_errors: bool = True,
    ) -> Reply:
        """Wait for a send_nowait update to be handled and return what the bot did since then."""
        start = self._queued_at.get(update_id, 0) if since is None else since
        return await self._reply(update_id, self.user_id, start, timeout, raise_errors)

    async def send_in_group(
        self,
        text: str,
        group_id: int = -100123,
        title: str = "测试群",
        *,
        reply_to: int | None = None,
        via: AnyApplication | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        raise_errors: bool = True,
    ) -> Reply:
        """Send a text in a group chat (supergroup when the id starts with -100)."""
        kind = "supergroup" if str(group_id).startswith("-100") else "group"
        chat = {"id": group_id, "type": kind, "title": title}
        content = self._with_reply(group_id, _text_content(text), reply_to)
        if self.api.privacy_mode and not _meant_for_bot(content, self.api.bot_id):
            # Privacy mode: the group sees the message, the bot never gets an update.
            self.api.add_message(chat, self.user, content)
            return Reply(update_id=0, records=[])
        return await self._deliver_message(chat, content, via, timeout, raise_errors)

    def _with_reply(self, chat_id: int, content: JSON, reply_to: int | None) -> JSON:
        """Attach the replied-to message (as Telegram does) when reply_to is given."""
        if reply_to is None:
            return content
        state = self.api.chat_state(chat_id)
        if state is None or reply_to not in state.messages or reply_to in state.deleted:
            raise PhoneError(f"no message {reply_to} in chat {chat_id} to reply to")
        return {**content, "reply_to_message": dict(state.messages[reply_to])}

    async def share_contact(
        self,
        phone_number: str | None = None,
        user_id: int | None = None,
        first_name: str | None = None,
        **options: Any,
    ) -> Reply:
        """Send a contact: your own by default, or someone else's when user_id is given."""
        own = user_id is None or user_id == self.user_id
        contact: JSON = {
            "phone_number": phone_number or self.phone_number,
            "first_name": first_name or (self.first_name if own else "联系人"),
            "user_id": self.user_id if user_id is None else user_id,
        }
        return await self._deliver_content({"contact": contact}, **options)

    async def press_reply_button(self, text: str, **options: Any) -> Reply:
        """Press a button of the reply keyboard the bot showed (sends its text or contact)."""
        state = self.api.chat_state(self.user_id)
        keyboard = state.reply_keyboard if state else None
        if not keyboard:
            raise PhoneError(f"no reply keyboard is shown, cannot press {text!r}")
        buttons = [
            b if isinstance(b, dict) else {"text": b} for row in keyboard["keyboard"] for b in row
        ]
        button = next((b for b in buttons if b.get("text") == text), None)
        if button is None:
            shown = [b.get("text") for b in buttons]
            raise PhoneError(f"no reply button {text!r}; the keyboard shows {shown}")
        if keyboard.get("one_time_keyboard") and state is not None:
            state.reply_keyboard = None
        if button.get("request_contact"):
            return await self.share_contact(**options)
        return await self._deliver_content(_text_content(text), **options)

    async def send_sticker(self, emoji: str = "👍", **options: Any) -> Reply:
        """Send a regular sticker."""
        stored = self.api.store_file("sticker", _FAKE_WEBP, "sticker.webp", "image/webp")
        sticker = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
            "file_size": stored.file_size,
        }
        return await self._deliver_content({"sticker": sticker}, **options)

    async def send_photo(
        self, data: bytes = _FAKE_JPEG, caption: str | None = None, **options: Any
    ) -> Reply:
        """Send a photo (two sizes, like Telegram) with an optional caption."""
        stored = self.api.store_file("photo", data, "photo.jpg", "image/jpeg")
        content: JSON = {"photo": photo_sizes(stored)}
        if caption:
            content["caption"] = caption
        return await self._deliver_content(content, **options)

    async def send_voice(self, duration: int = 3, data: bytes = _FAKE_OGG, **options: Any) -> Reply:
        """Send a voice note."""
        stored = self.api.store_file("voice", data, "voice.ogg", "audio/ogg")
        voice = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": stored.file_size,
        }
        return await self._deliver_content({"voice": voice}, **options)

    async def send_document(
        self,
        file_name: str,
        data: bytes,
        mime_type: str = "application/octet-stream",
        caption: str | None = None,
        **options: Any,
    ) -> Reply:
        """Send a file; the bot can getFile and download it."""
        stored = self.api.store_file("document", data, file_name, mime_type)
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": stored.file_size,
        }
        content: JSON = {"document": document}
        if caption:
            content["caption"] = caption
        return await self._deliver_content(content, **options)

    # -- inline buttons ----------------------------------------------------------------------

    async def tap(
        self,
        text: str | None = None,
        *,
        callback_data: str | None = None,
        message_id: int | None = None,
        chat_id: int | None = None,
        via: AnyApplication | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        raise_errors: bool = True,
    ) -> Reply:
        """Tap the inline button labelled text on the newest bot message that has it.

        With callback_data instead of text, forge (or replay) a tap on message_id (default: the
        newest bot message); a deleted or unknown message arrives as an InaccessibleMessage.
        """
        chat_id = self.user_id if chat_id is None else chat_id
        if text is not None:
            message, callback_data = self._find_button(chat_id, text)
        elif callback_data is not None:
            message = self._message_for_forged_tap(chat_id, message_id)
        else:
            raise PhoneError("tap() needs the button text or callback_data")
        query_id = str(4_000_000_000_000_000 + int(self.api.unique("")))
        self.api.open_callback_query(query_id)
        query = {
            "id": query_id,
            "from": self.user,
            "message": message,
            "chat_instance": str(abs(hash(chat_id)) % 10**18),
            "data": callback_data,
        }
        since = self.api.mark()
        update_id = await self._dispatch({"callback_query": query}, via)
        return await self._reply(update_id, chat_id, since, timeout, raise_errors, query_id)

    def _find_button(self, chat_id: int, text: str) -> tuple[JSON, str]:
        for message in reversed(self._bot_messages(chat_id)):
            for row in inline_rows(message):
                for button in row:
                    if button.get("text") != text:
                        continue
                    if "callback_data" not in button:
                        raise PhoneError(f"button {text!r} is not a callback button: {button}")
                    return message, str(button["callback_data"])
        raise PhoneError(f"no button {text!r} in chat {chat_id}; the screen shows:\n{self.screen}")

    def _message_for_forged_tap(self, chat_id: int, message_id: int | None) -> JSON:
        state = self.api.chat_state(chat_id)
        if message_id is None:
            bot_messages = self._bot_messages(chat_id)
            if not bot_messages:
                raise PhoneError(f"the bot has no message in chat {chat_id} to tap on")
            return bot_messages[-1]
        if state and message_id in state.messages and message_id not in state.deleted:
            return state.messages[message_id]
        chat = state.chat if state else {"id": chat_id, "type": "private"}
        return {"chat": chat, "message_id": message_id, "date": 0}

    # -- what the phone shows ----------------------------------------------------------------

    def _bot_messages(self, chat_id: int) -> list[JSON]:
        return [m for m in self.api.chat(chat_id) if m["from"]["id"] == self.api.bot_id]

    @property
    def history(self) -> list[JSON]:
        """The private chat, oldest first: both sides, edits applied, deletions removed."""
        return self.api.chat(self.user_id)

    @property
    def last_bot_message(self) -> JSON | None:
        """The newest message from the bot in the private chat."""
        messages = self._bot_messages(self.user_id)
        return messages[-1] if messages else None

    @property
    def screen(self) -> Screen:
        """The latest bot message text and its inline keyboard (rows of button texts)."""
        message = self.last_bot_message
        if message is None:
            return Screen("")
        return Screen(message_text(message), keyboard_texts(message))

    @property
    def buttons(self) -> list[str]:
        """Inline button texts on the latest bot message, flattened."""
        return [text for row in self.screen.keyboard for text in row]

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """The reply keyboard currently shown under the input field, as rows of texts."""
        state = self.api.chat_state(self.user_id)
        if not state or not state.reply_keyboard:
            return None
        rows = state.reply_keyboard["keyboard"]
        return [[b["text"] if isinstance(b, dict) else str(b) for b in row] for row in rows]

    # -- delivery ----------------------------------------------------------------------------

    async def _deliver_content(
        self,
        content: JSON,
        *,
        via: AnyApplication | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        raise_errors: bool = True,
    ) -> Reply:
        return await self._deliver_message(self.private_chat, content, via, timeout, raise_errors)

    async def _deliver_message(
        self,
        chat: JSON,
        content: JSON,
        via: AnyApplication | None,
        timeout: float,
        raise_errors: bool,
    ) -> Reply:
        since = self.api.mark()
        if chat["id"] == self.user_id:
            self.api.unblock(self.user_id)  # writing to a bot you blocked restarts it
        message = self.api.add_message(chat, self.user, content)
        update_id = await self._dispatch({"message": message}, via)
        return await self._reply(update_id, chat["id"], since, timeout, raise_errors)

    async def _dispatch(self, update: JSON, via: AnyApplication | None) -> int:
        """Queue update for getUpdates, or hand it straight to one Application (via=app)."""
        if via is None:
            return self.api.push_update(update)
        update = {"update_id": self.api.new_update_id(), **update}
        self.api.track(via)
        update_object = Update.de_json(update, via.bot)
        if via.running:
            await via.update_queue.put(update_object)
        else:
            self.api.mark_started(update["update_id"])
            await via.process_update(update_object)
            self.api.mark_processed(update["update_id"])
        return int(update["update_id"])

    async def _reply(
        self,
        update_id: int,
        chat_id: int,
        since: int,
        timeout: float,
        raise_errors: bool,
        query_id: str | None = None,
    ) -> Reply:
        def visible(records: list[CallRecord]) -> list[CallRecord]:
            return [r for r in records if _concerns(r, chat_id, query_id)]

        if self.api.tracking:
            await self.api.wait_processed(update_id, timeout)
            records = visible(self.api.calls_during(update_id))
        else:
            await self._wait_untracked(update_id, lambda: visible(self.api.log[since:]), timeout)
            records = visible(self.api.log[since:])
        reply = Reply(update_id, records, self.api.errors_for(update_id))
        if raise_errors and reply.errors:
            raise BotCrashed(
                f"the bot raised {reply.errors[0]!r} while handling update {update_id}; "
                "pass raise_errors=False to inspect Reply.errors"
            ) from reply.errors[0]
        return reply

    async def _wait_untracked(self, update_id: int, visible: Any, timeout: float) -> None:
        """Without harness tracking: wait for the update to be fetched and a visible answer."""

        def answered() -> bool:
            fetched = all(u["update_id"] != update_id for u in self.api.pending_updates)
            return fetched and bool(visible())

        def explain() -> str:
            return (
                f"the bot showed nothing for update {update_id} within {timeout}s "
                f"(no tracked Application; use running_bot or api.track(app)). "
                f"Recent requests:\n{self.api.describe_recent()}"
            )

        await self.api.wait_until(answered, timeout, explain)


def _text_content(text: str) -> JSON:
    content: JSON = {"text": text}
    entities = command_entities(text)
    if entities:
        content["entities"] = entities
    return content


def _meant_for_bot(content: JSON, bot_id: int) -> bool:
    """Privacy mode lets through group messages starting with a command or replying to the bot."""
    replied = content.get("reply_to_message") or {}
    if replied.get("from", {}).get("id") == bot_id:
        return True
    return any(e["offset"] == 0 for e in content.get("entities", []))


def _concerns(record: CallRecord, chat_id: int, query_id: str | None) -> bool:
    """Whether a logged call is something the user of chat_id (or this tap) can see."""
    if record.method not in VISIBLE_METHODS:
        return False
    if record.method == "answerCallbackQuery":
        return query_id is not None and record.params.get("callback_query_id") == query_id
    try:
        return int(record.params.get("chat_id", 0)) == chat_id
    except (TypeError, ValueError):
        return False
