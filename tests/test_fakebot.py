"""The fake Bot API drives the real python-telegram-bot Application over HTTP, faithfully."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest
from telegram import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    Update,
)
from telegram.error import BadRequest, Conflict, Forbidden, NetworkError, RetryAfter
from telegram.ext import (
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fakebot import AnyApplication, BotCrashed, FakeBotApi, PhoneError, running_bot

COUNTER_KEYBOARD = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("加一", callback_data="inc"),
            InlineKeyboardButton("原样", callback_data="same"),
        ]
    ]
)


# -- a tiny bot, defined here so these tests do not depend on the product's handlers ---------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greets with the deep-link argument and shows the counter keyboard."""
    assert update.effective_user and update.effective_message
    argument = " ".join(context.args or []) or "-"
    await update.effective_message.reply_text(
        f"你好，{update.effective_user.first_name}！参数：{argument}", reply_markup=COUNTER_KEYBOARD
    )


async def increment(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Edits the counter message in place and answers with a toast."""
    query = update.callback_query
    assert query is not None and context.user_data is not None
    context.user_data["count"] = context.user_data.get("count", 0) + 1
    await query.answer(f"+1 → {context.user_data['count']}")
    await query.edit_message_text(
        f"计数：{context.user_data['count']}", reply_markup=COUNTER_KEYBOARD
    )


async def edit_unchanged(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Re-sends the message's own text and keyboard: Telegram refuses such an edit."""
    query = update.callback_query
    assert query is not None and isinstance(query.message, Message) and query.message.text
    await query.answer("好的", show_alert=True)
    await query.edit_message_text(query.message.text, reply_markup=COUNTER_KEYBOARD)


async def send_report(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Uploads a small file as a document."""
    assert update.effective_chat
    await context.bot.send_document(
        update.effective_chat.id,
        io.BytesIO("序号,名称\n1,第一党支部\n".encode()),
        filename="report.csv",
        caption="报告",
    )


async def ask_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Shows a one-time reply keyboard with a share-contact button."""
    assert update.effective_message
    button = KeyboardButton("分享手机号", request_contact=True)
    await update.effective_message.reply_text(
        "请分享手机号", reply_markup=ReplyKeyboardMarkup([[button]], one_time_keyboard=True)
    )


async def got_contact(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Says whose phone number arrived."""
    assert update.effective_message and update.effective_message.contact
    contact = update.effective_message.contact
    own = contact.user_id == (update.effective_user.id if update.effective_user else None)
    await update.effective_message.reply_text(f"{'本人' if own else '他人'}:{contact.phone_number}")


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Repeats any other text, naming the application that handled it."""
    assert update.effective_message and update.effective_message.text
    name = context.bot_data.get("name", "bot")
    context.bot_data.setdefault("handled", []).append(update.update_id)
    await update.effective_message.reply_text(f"{name}: {update.effective_message.text}")


async def publish_commands(app: AnyApplication) -> None:
    """post_init: a default command list and a Chinese one for private chats."""
    await app.bot.set_my_commands([BotCommand("start", "Start")])
    await app.bot.set_my_commands(
        [BotCommand("start", "开始"), BotCommand("report", "报告")],
        scope=BotCommandScopeAllPrivateChats(),
        language_code="zh",
    )


def tiny_bot_factory(
    name: str = "bot", handled: list[int] | None = None
) -> Callable[..., AnyApplication]:
    """A factory for running_bot building the tiny bot; handled collects echoed update ids."""

    def build(token: str, base_url: str, base_file_url: str) -> AnyApplication:
        app = (
            ApplicationBuilder()
            .token(token)
            .base_url(base_url)
            .base_file_url(base_file_url)
            .post_init(publish_commands)
            .build()
        )
        app.bot_data["name"] = name
        if handled is not None:
            app.bot_data["handled"] = handled
        app.add_handler(CommandHandler("start", start))
        app.add_handler(CommandHandler("report", send_report))
        app.add_handler(CommandHandler("contact", ask_contact))
        app.add_handler(CallbackQueryHandler(increment, pattern="^inc$"))
        app.add_handler(CallbackQueryHandler(edit_unchanged, pattern="^same$"))
        app.add_handler(MessageHandler(filters.CONTACT, got_contact))
        app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
        return app

    return build


@pytest.fixture
async def bot(fake_api: FakeBotApi) -> AsyncIterator[AnyApplication]:
    """The tiny bot polling the fake API."""
    async with running_bot(tiny_bot_factory(), fake_api) as app:
        yield app


# -- basics --------------------------------------------------------------------------------


async def test_get_me_goes_through_ptb(bot: AnyApplication, fake_api: FakeBotApi) -> None:
    me = await bot.bot.get_me()

    assert (me.id, me.username, me.is_bot) == (123456, "ceping_test_bot", True)
    assert fake_api.count("getMe") >= 1


async def test_wrong_token_is_unauthorized(fake_api: FakeBotApi) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake_api.base_url}999:WRONG/getMe")

    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_unknown_method_is_404(fake_api: FakeBotApi) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fake_api.base_url}{fake_api.token}/sendTelepathy")

    assert response.json() == {
        "ok": False,
        "error_code": 404,
        "description": "Not Found: method not found",
    }


async def test_a_user_starts_the_bot_with_a_deep_link(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1001, first_name="李四")

    reply = await phone.send("/start abc")

    assert reply.texts == ["你好，李四！参数：abc"]
    assert reply.buttons == ["加一", "原样"]
    sent = fake_api.chat(1001)[0]
    assert sent["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert phone.screen.text == "你好，李四！参数：abc"


async def test_tapping_a_button_edits_the_message_in_place(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1002)
    await phone.send("/start")

    first = await phone.tap("加一")
    second = await phone.tap("加一")

    assert first.toast == "+1 → 1"
    assert second.texts == ["计数：2"]
    assert phone.screen.text == "计数：2"
    assert phone.screen.keyboard == [["加一", "原样"]]
    bot_messages = [m for m in phone.history if m["from"]["is_bot"]]
    assert len(bot_messages) == 1, "the counter must be edited, not re-sent"
    assert "edit_date" in bot_messages[0]


async def test_an_edit_that_changes_nothing_raises_bad_request_in_the_bot(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1003)
    await phone.send("/start")

    reply = await phone.tap("原样", raise_errors=False)

    assert reply.alert == "好的"
    assert len(reply.errors) == 1
    assert isinstance(reply.errors[0], BadRequest)
    assert "Message is not modified" in str(reply.errors[0])
    assert [r.status for r in reply.failed] == [400]
    with pytest.raises(BotCrashed):
        await phone.tap("原样")


async def test_taps_on_missing_buttons_are_reported_to_the_test(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1004)
    await phone.send("/start")

    with pytest.raises(PhoneError, match="no button '删除'"):
        await phone.tap("删除")


async def test_a_forged_tap_on_a_deleted_message_arrives_inaccessible(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1005)
    started = await phone.send("/start")
    message_id = started.messages[0]["message_id"]
    await bot.bot.delete_message(1005, message_id)

    reply = await phone.tap(callback_data="inc", message_id=message_id, raise_errors=False)

    assert phone.history[-1]["text"] == "/start", "the deleted message is gone from the phone"
    assert isinstance(reply.errors[0], BadRequest)
    assert "Message to edit not found" in str(reply.errors[0])


# -- errors as Telegram sends them -----------------------------------------------------------


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # PTB's own
async def test_flood_control_surfaces_as_retry_after(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1006)
    phone.start_chat()
    fake_api.fail_next("sendMessage", error_code=429, retry_after=7)

    with pytest.raises(RetryAfter) as raised:
        await bot.bot.send_message(1006, "提醒")
    await bot.bot.send_message(1006, "提醒")

    assert "Retry in 7 seconds" in str(raised.value)
    assert [m["text"] for m in phone.history] == ["提醒"], "only the second attempt arrived"


async def test_server_errors_and_dropped_connections_are_network_errors(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    fake_api.user(1007).start_chat()
    fake_api.fail_next("sendMessage", error_code=500)
    fake_api.drop_next("sendMessage")

    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.bot.send_message(1007, "a")
    with pytest.raises(NetworkError, match="httpx"):
        await bot.bot.send_message(1007, "b")


async def test_a_user_who_blocked_the_bot_gives_forbidden(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1008)
    await phone.send("/start")
    fake_api.block(1008)

    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.bot.send_message(1008, "提醒")


async def test_a_chat_that_never_talked_to_the_bot_is_not_found(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.bot.send_message(4242, "你好")


async def test_broken_formatting_is_refused_like_telegram(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    fake_api.user(1009).start_chat()

    with pytest.raises(BadRequest, match="Can't parse entities"):
        await bot.bot.send_message(1009, "分数 <90", parse_mode="HTML")
    with pytest.raises(BadRequest, match=r"(?i)can't find end of the entity"):
        await bot.bot.send_message(1009, "用户 li_si 已登记", parse_mode="Markdown")
    with pytest.raises(BadRequest, match=r"(?i)character '\.' is reserved"):
        await bot.bot.send_message(1009, "得分 89.5", parse_mode="MarkdownV2")
    shown = await bot.bot.send_message(1009, "<b>好</b> &lt;90", parse_mode="HTML")

    assert shown.text == "好 <90"
    assert shown.entities[0].type == "bold"
    assert fake_api.chat(1009)[-1]["text"] == "好 <90", "only the valid message arrived"


# -- files, commands, keyboards --------------------------------------------------------------


async def test_a_sent_document_is_stored_and_downloadable(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1010)

    reply = await phone.send("/report")

    document = reply.documents[0]
    assert document["file_name"] == "report.csv"
    assert reply.texts == ["报告"]
    expected = "序号,名称\n1,第一党支部\n".encode()
    assert fake_api.file_bytes(document["file_id"]) == expected
    telegram_file = await bot.bot.get_file(document["file_id"])
    assert bytes(await telegram_file.download_as_bytearray()) == expected


async def test_commands_are_stored_per_scope_and_language(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    private_zh = fake_api.commands({"type": "all_private_chats"}, "zh")

    assert [c["command"] for c in fake_api.commands()] == ["start"]
    assert [(c["command"], c["description"]) for c in private_zh] == [
        ("start", "开始"),
        ("report", "报告"),
    ]
    assert fake_api.commands({"type": "all_private_chats"}) == []
    read_back = await bot.bot.get_my_commands(BotCommandScopeAllPrivateChats(), "zh")
    assert [c.command for c in read_back] == ["start", "report"]
    await bot.bot.delete_my_commands(BotCommandScopeChat(1), "zh")
    assert len(fake_api.commands({"type": "all_private_chats"}, "zh")) == 2


async def test_contact_sharing_through_a_reply_keyboard(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1011)
    await phone.send("/contact")
    assert phone.reply_keyboard == [["分享手机号"]]

    own = await phone.press_reply_button("分享手机号")
    other = await phone.share_contact("13900000000", user_id=2002)

    assert own.texts == [f"本人:{phone.phone_number}"]
    assert other.texts == ["他人:13900000000"]
    assert phone.reply_keyboard is None, "a one-time keyboard hides after use"


async def test_stickers_are_ignored_by_the_tiny_bot(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1012)

    reply = await phone.send_sticker()

    assert not reply, "processing finished without any visible answer"
    assert fake_api.is_processed(reply.update_id)


async def test_in_groups_the_bot_only_sees_commands(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1013)

    chatter = await phone.send_in_group("大家好", group_id=-100777)
    command = await phone.send_in_group("/start@ceping_test_bot", group_id=-100777)

    assert not chatter, "privacy mode: plain group messages never reach the bot"
    assert command.texts == ["你好，张三！参数：-"]
    assert command.last and command.last["chat"]["type"] == "supergroup"
    assert command.last["reply_to_message"]["text"] == "/start@ceping_test_bot"
    assert [m["text"] for m in fake_api.chat(-100777)][:2] == ["大家好", "/start@ceping_test_bot"]
    answer = await phone.send_in_group(
        "谢谢", group_id=-100777, reply_to=command.messages[0]["message_id"]
    )
    assert answer.texts == ["bot: 谢谢"], "a reply to the bot passes privacy mode"


# -- restarts and several Applications -------------------------------------------------------


async def test_a_restarted_bot_continues_at_the_right_offset(fake_api: FakeBotApi) -> None:
    handled: list[int] = []
    phone = fake_api.user(1020)
    async with running_bot(tiny_bot_factory("first", handled), fake_api):
        await phone.send("一")

    waiting = [phone.send_nowait("二"), phone.send_nowait("三")]
    async with running_bot(tiny_bot_factory("second", handled), fake_api):
        replies = [await phone.collect(update_id) for update_id in waiting]

    assert [r.texts for r in replies] == [["second: 二"], ["second: 三"]]
    assert handled == [1, 2, 3], "every update handled exactly once, in order"
    assert fake_api.pending_updates == []


async def test_telegram_refuses_a_second_poller_with_conflict(fake_api: FakeBotApi) -> None:
    first = ApplicationBuilder().token(fake_api.token).base_url(fake_api.base_url).build()
    second = ApplicationBuilder().token(fake_api.token).base_url(fake_api.base_url).build()
    async with first, second:
        long_poll = asyncio.create_task(first.bot.get_updates(timeout=5))
        await fake_api.wait_for_request("getUpdates")
        await second.bot.get_updates(timeout=0)

        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await long_poll


async def test_two_applications_can_share_the_server(fake_api: FakeBotApi) -> None:
    handled: list[int] = []
    fake_api.allow_multiple_pollers = True
    phones = [fake_api.user(1030 + n) for n in range(4)]
    async with (
        running_bot(tiny_bot_factory("a", handled), fake_api),
        running_bot(tiny_bot_factory("b", handled), fake_api),
    ):
        replies = await asyncio.gather(*(p.send(f"第{n}条") for n, p in enumerate(phones)))

    assert sorted(handled) == [1, 2, 3, 4], "each update reaches exactly one Application"
    assert all(len(r.texts) == 1 for r in replies)


async def test_an_update_can_be_handed_to_one_chosen_application(fake_api: FakeBotApi) -> None:
    phone = fake_api.user(1040)
    async with (
        running_bot(tiny_bot_factory("poller"), fake_api),
        running_bot(tiny_bot_factory("worker"), fake_api, polling=False) as worker,
    ):
        via_worker = await phone.send("你好", via=worker)
        via_polling = await phone.send("再见")

    assert via_worker.texts == ["worker: 你好"]
    assert via_polling.texts == ["poller: 再见"]


# -- the server in its own process -----------------------------------------------------------


async def test_the_server_runs_as_its_own_process() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fakebot", "--port", "0", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        base_url = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        root = base_url.removesuffix("/bot")
        app = ApplicationBuilder().token("123456:TEST-TOKEN").base_url(base_url).build()
        async with app, httpx.AsyncClient() as control:
            await control.post(f"{root}/_fake/message", json={"user_id": 7, "text": "hi"})
            (update,) = await app.bot.get_updates(timeout=timedelta(seconds=1))
            await app.bot.send_message(update.message.chat.id if update.message else 0, "收到")
            me = await app.bot.get_me()
            chat = (await control.get(f"{root}/_fake/chat/7")).json()["result"]
            waited = await control.get(f"{root}/_fake/wait?method=sendMessage&count=1")
        assert me.username == "ceping_test_bot"
        assert [m["text"] for m in chat] == ["hi", "收到"]
        assert waited.json() == {"ok": True, "result": 1}
    finally:
        process.terminate()
        await process.wait()


# -- synchronising with the bot without sleeping ---------------------------------------------


async def test_a_scheduled_job_is_awaited_by_its_request(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    fake_api.user(1050).start_chat()

    async def remind(context: ContextTypes.DEFAULT_TYPE) -> None:
        await context.bot.send_message(1050, "请在3月20日前完成自评")

    assert bot.job_queue is not None
    bot.job_queue.run_once(remind, when=0)
    sent = await fake_api.wait_for_request("sendMessage", lambda p: p["chat_id"] == 1050)

    assert sent["text"] == "请在3月20日前完成自评"
    assert fake_api.chat(1050)[-1]["text"] == sent["text"]


async def test_waiting_for_a_request_that_never_comes_explains_what_happened(
    bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    await fake_api.user(1051).send("你好")

    with pytest.raises(TimeoutError) as raised:
        await fake_api.wait_for_request("sendDocument", timeout=0.05)

    assert "no sendDocument request" in str(raised.value)
    assert "sendMessage" in str(raised.value), "the recent requests are listed"


async def test_a_phone_works_with_an_application_started_by_hand(fake_api: FakeBotApi) -> None:
    app = tiny_bot_factory("manual")(fake_api.token, fake_api.base_url, fake_api.base_file_url)
    async with app:
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0, timeout=timedelta(seconds=5))
        await app.start()
        reply = await fake_api.user(1052).send("你好")
        await app.updater.stop()
        await app.stop()

    assert reply.texts == ["manual: 你好"]


async def test_get_chat_describes_a_known_chat(bot: AnyApplication, fake_api: FakeBotApi) -> None:
    await fake_api.user(1053, first_name="王五", username="wangwu").send("/start")

    chat = await bot.bot.get_chat(1053)

    assert (chat.type, chat.first_name, chat.username) == ("private", "王五", "wangwu")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.bot.get_chat(9999)


# -- getUpdates semantics ----------------------------------------------------------------------


@pytest.fixture
async def bare_bot(fake_api: FakeBotApi) -> AsyncIterator[AnyApplication]:
    """An initialized Application that is not polling, to call getUpdates by hand."""
    app = ApplicationBuilder().token(fake_api.token).base_url(fake_api.base_url).build()
    async with app:
        yield app


async def test_a_long_poll_is_answered_as_soon_as_an_update_arrives(
    bare_bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    long_poll = asyncio.create_task(bare_bot.bot.get_updates(timeout=30))
    await fake_api.wait_for_request("getUpdates")
    assert not long_poll.done(), "nothing is queued, so the poll is held open"

    fake_api.user(1060).send_nowait("醒醒")
    updates = await asyncio.wait_for(long_poll, 5)

    assert [u.message.text for u in updates if u.message] == ["醒醒"]


async def test_offsets_confirm_updates_and_limit_caps_a_batch(
    bare_bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    phone = fake_api.user(1061)
    ids = [phone.send_nowait(text) for text in ("一", "二", "三", "四")]

    first_two = await bare_bot.bot.get_updates(limit=2)
    again = await bare_bot.bot.get_updates(limit=2)
    rest = await bare_bot.bot.get_updates(offset=first_two[-1].update_id + 1)
    last_only = await bare_bot.bot.get_updates(offset=-1)

    assert [u.update_id for u in first_two] == ids[:2]
    assert [u.update_id for u in again] == ids[:2], "unconfirmed updates come again"
    assert [u.update_id for u in rest] == ids[2:]
    assert [u.update_id for u in last_only] == ids[3:], "offset -1 keeps only the newest"


async def test_get_updates_is_refused_while_a_webhook_is_set(
    bare_bot: AnyApplication, fake_api: FakeBotApi
) -> None:
    await bare_bot.bot.set_webhook("https://example.invalid/hook")

    with pytest.raises(Conflict, match="webhook is active"):
        await bare_bot.bot.get_updates()
    await bare_bot.bot.delete_webhook()
    assert await bare_bot.bot.get_updates() == ()
    assert fake_api.webhook == {}
