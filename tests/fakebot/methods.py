"""The Bot API methods of the fake server: polling, webhooks, messages, files, commands.

A mixin of ``tests.fakebot.server.FakeBotApi``, which holds the state they read and change.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

from tests.fakebot.records import (
    DEFAULT_DESCRIPTIONS,
    JSON,
    NOT_MODIFIED,
    ApiError,
    ChatState,
    Handler,
    StoredFile,
    UploadedFile,
    as_int,
    bad_request,
    check_inline_keyboard,
    inline_markup,
    photo_sizes,
    scope_key,
)
from tests.fakebot.text import ParseError, render, utf16_len

if TYPE_CHECKING:
    pass


class BotMethods:
    """The Bot API methods the fake answers, mixed into FakeBotApi (its state lives there)."""

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
                raise ApiError(409, DEFAULT_DESCRIPTIONS[409])
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
            "max_connections": params.get("max_connections"),
        }
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if self.webhook["url"]:
            self.webhook_pusher.start()  # from now on updates are POSTed, as Telegram does
        return True

    async def _delete_webhook(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        self.webhook = {}
        self._notify()  # the pusher sees the URL gone and stops
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
        if state is None and self.open_chats and chat_id > 0:
            # Benches: everyone wrote to the bot once (registered) before the fake started.
            state = self.open_chat({"id": chat_id, "type": "private", "first_name": str(chat_id)})
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
            check_inline_keyboard(markup)
            message["reply_markup"] = markup
        elif "keyboard" in markup:
            state.reply_keyboard = markup
        elif markup.get("remove_keyboard"):
            state.reply_keyboard = None

    def _bot_message(self, state: ChatState, content: JSON, params: JSON) -> JSON:
        """Store a message from the bot (with reply_markup/reply_to handling) and return it."""
        markup = params.get("reply_markup")
        inline = inline_markup(markup)
        if inline:
            check_inline_keyboard(inline)
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
        new_markup = inline_markup(markup)
        if new_markup:
            check_inline_keyboard(new_markup)
        dropped = ("reply_markup", "edit_date", *replaced)
        edited = {k: v for k, v in message.items() if k not in dropped}
        edited.update(changes)
        if new_markup:
            edited["reply_markup"] = new_markup
        comparable = ("text", "entities", "caption", "caption_entities", "reply_markup")
        if all(edited.get(key) == message.get(key) for key in comparable):
            raise ApiError(400, NOT_MODIFIED)
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
        state = self._chats.get(as_int(params.get("chat_id")))
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
        key = scope_key(params.get("scope"), params.get("language_code") or "")
        self.commands_by_scope[key] = commands
        return True

    async def _get_my_commands(self, params: JSON, files: dict[str, UploadedFile]) -> list[JSON]:
        return self.commands(params.get("scope"), params.get("language_code") or "")

    async def _delete_my_commands(self, params: JSON, files: dict[str, UploadedFile]) -> bool:
        key = scope_key(params.get("scope"), params.get("language_code") or "")
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
