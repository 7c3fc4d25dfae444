"""Running the bot: language, menus, help, bad input, errors, secrets in logs, webhook mode."""

from __future__ import annotations

import gc
import logging
import socket
import sys
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import func, select
from telegram import Update

from bot import app as bot_app
from bot import collector, reports
from bot.common import MenuCommand
from storage.db import engine_for
from storage.models import AuditLog, TelegramAccount
from storage.settings import Settings
from surveys.i18n import MissingMessage, t
from tests.fakebot import FakeBotApi

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness, FakeClock, World


# --- Language -------------------------------------------------------------------------------


async def test_a_member_switches_to_english_and_the_next_reply_is_english(
    bot: BotHarness,
) -> None:
    phone = await bot.register(1001, "member")

    chooser = await phone.send("/lang")
    assert chooser.buttons == ["简体中文", "English"]
    chosen = await phone.tap("English")
    after = await phone.send("/help")

    assert chosen.answer is not None  # the button stops spinning
    assert chosen.edits[0]["text"] == t("lang.chosen", "en")
    assert after.text.startswith(t("help.header", "en"))
    assert t("command.help", "en") in after.text
    with bot.session() as session:
        account = session.exec(
            select(TelegramAccount).where(TelegramAccount.telegram_user_id == 1001)
        ).one()
        assert account.language == "en"


async def test_the_language_choice_sticks_until_changed_back(bot: BotHarness) -> None:
    phone = await bot.register(1001, "member")
    await phone.send("/lang")
    await phone.tap("English")
    await phone.send("/lang")
    await phone.tap("简体中文")

    reply = await phone.send("/help")

    assert reply.text.startswith(t("help.header", "zh_CN"))


async def test_someone_unregistered_is_answered_in_their_telegram_language(
    bot: BotHarness,
) -> None:
    english = bot.phone(1101, language_code="en")

    welcome = await english.send("/start")

    assert welcome.text == t("registration.welcome", "en")
    assert english.reply_keyboard == [[t("registration.share_phone_button", "en")]]


async def test_choosing_a_language_before_registering_stores_nothing(bot: BotHarness) -> None:
    phone = bot.phone(1102)
    await phone.send("/lang")

    tapped = await phone.tap("English")
    assert tapped.texts[0] == t("lang.chosen_unregistered", "en")
    # Not registered: the phone button comes with the answer (issue 14).
    assert phone.reply_keyboard == [[t("registration.share_phone_button", "en")]]
    later = await phone.send("/help")

    assert later.text.startswith(t("help.header", "zh_CN"))
    with bot.session() as session:
        assert session.exec(select(func.count()).select_from(TelegramAccount)).one() == 0


# --- Menus and help -------------------------------------------------------------------------


async def test_the_command_menu_is_published_in_chinese_and_english(bot: BotHarness) -> None:
    chinese = {c["command"]: c["description"] for c in bot.api.commands()}
    english = {c["command"]: c["description"] for c in bot.api.commands(language_code="en")}

    for name in ("start", "help", "lang"):
        assert chinese[name] == t(f"command.{name}", "zh_CN")
        assert english[name] == t(f"command.{name}", "en")


async def test_a_secretary_gets_her_own_menu_and_help_while_a_member_does_not(
    engine: Engine, clock: FakeClock, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.bot_fixtures import started_bot

    progress = MenuCommand("progress", "command.help", roles=frozenset({"secretary"}))
    monkeypatch.setattr(reports, "COMMANDS", (progress,), raising=False)
    async with started_bot(engine, clock, world) as bot:
        secretary = await bot.register(1002, "secretary")
        member = await bot.register(1003, "member")

        secretary_help = await secretary.send("/help")
        member_help = await member.send("/help")

        chat_menu = bot.api.commands({"type": "chat", "chat_id": 1002})
        assert "progress" in [c["command"] for c in chat_menu]
        member_menu = bot.api.commands({"type": "chat", "chat_id": 1003})
        assert "progress" not in [c["command"] for c in member_menu]
        assert "progress" not in [c["command"] for c in bot.api.commands()]
        assert "/progress" in secretary_help.text
        assert "/progress" not in member_help.text


def test_a_command_without_a_menu_text_stops_the_bot_at_start(
    monkeypatch: pytest.MonkeyPatch, engine: Engine
) -> None:
    broken = MenuCommand("tally", "no.such.key", roles=frozenset({"organizer"}))
    monkeypatch.setattr(reports, "COMMANDS", (broken,), raising=False)

    with pytest.raises(MissingMessage, match=r"no\.such\.key"):
        bot_app.build_application(settings_for_token(), engine)


async def test_a_module_waiting_for_typed_input_sees_the_text_first(
    engine: Engine, clock: FakeClock, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telegram.ext import ApplicationHandlerStop, MessageHandler, filters

    from tests.bot_fixtures import started_bot

    seen: list[str] = []

    async def take_reason(update: Update, context: Any) -> None:
        assert update.effective_message is not None
        seen.append(update.effective_message.text or "")
        raise ApplicationHandlerStop

    waiting = MessageHandler(filters.TEXT & ~filters.COMMAND, take_reason)
    monkeypatch.setattr(reports, "priority_handlers", lambda: [waiting], raising=False)
    async with started_bot(engine, clock, world) as bot:
        reply = await bot.phone(1001).send("因为台账不全")
        command = await bot.phone(1001).send("/help")

    assert seen == ["因为台账不全"]
    assert not reply  # nothing else answered the text
    assert command.text.startswith(t("help.header"))  # commands still reach the main list


# --- Bad input ------------------------------------------------------------------------------


async def test_an_unknown_command_points_to_help(bot: BotHarness) -> None:
    reply = await bot.phone(1001).send("/frobnicate")

    assert reply.text == t("fallback.unknown_command")


@pytest.mark.parametrize("send", ["send_sticker", "send_photo", "send_voice"])
async def test_stickers_photos_and_voice_get_a_plain_explanation_and_change_nothing(
    bot: BotHarness, send: str
) -> None:
    phone = await bot.register(1001, "member")
    with bot.session() as session:
        audit_before = session.exec(select(func.count()).select_from(AuditLog)).one()

    reply = await getattr(phone, send)()

    assert reply.text == t("fallback.media")
    with bot.session() as session:
        assert session.exec(select(func.count()).select_from(AuditLog)).one() == audit_before


async def test_a_command_in_a_group_asks_for_a_private_chat(bot: BotHarness) -> None:
    phone = bot.phone(1001)

    command = await phone.send_in_group("/start")
    chatter = await phone.send_in_group("大家好，今天开会")
    elsewhere = await phone.send_in_group("/help@some_other_bot")

    assert command.text == t("fallback.group")
    assert command.messages[0]["chat"]["id"] == -100123
    assert not chatter  # ordinary group talk is ignored
    assert not elsewhere  # a command for another bot is not ours to answer
    with bot.session() as session:
        assert session.exec(select(func.count()).select_from(TelegramAccount)).one() == 0


# --- Errors and secrets ---------------------------------------------------------------------


async def test_a_failure_is_apologised_for_and_logged_without_the_token(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    phone = bot.phone(1001)
    # Telegram refuses the reply with an error that quotes the token back.
    bot.api.fail_next("sendMessage", 400, f"Bad Request: bot{bot.api.token} is confused")

    reply = await phone.send("/help", raise_errors=False)

    assert reply.errors  # the handler did fail
    assert reply.texts[-1] == t("error.generic")
    assert "error while handling an update" in caplog.text
    assert bot.api.token not in caplog.text
    assert "[REDACTED]" in caplog.text


async def test_the_token_never_reaches_the_logs_even_with_http_logging_on(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")

    phone = await bot.register(1001, "member")
    await phone.send("/lang")
    await phone.tap("English")
    await phone.send("/help")

    urls = [r for r in caplog.records if r.name == "httpx" and "/bot" in r.getMessage()]
    assert urls  # httpx did log the Bot API URLs…
    token, secret = bot.api.token, bot.api.token.split(":", 1)[1]
    for record in caplog.records:
        assert secret not in record.getMessage(), record.name
    assert token not in caplog.text and secret not in caplog.text
    assert all("[REDACTED]" in r.getMessage() for r in urls)  # …with the token blanked out


def test_the_http_client_loggers_are_quiet_by_default(bot: BotHarness) -> None:
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert logging.getLogger("httpcore").getEffectiveLevel() >= logging.WARNING


# --- Running: polling and webhook -----------------------------------------------------------


async def test_the_jobs_start_with_the_bot_and_stop_with_it(
    engine: Engine, clock: FakeClock, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.bot_fixtures import started_bot

    events: list[str] = []

    async def start(application: Any) -> None:
        events.append("start")

    async def stop(application: Any) -> None:
        events.append("stop")

    monkeypatch.setattr(bot_app.runner, "start", start)
    monkeypatch.setattr(bot_app.runner, "stop", stop)
    async with started_bot(engine, clock, world, with_jobs=True) as bot:
        await bot.phone(1001).send("/help")
        assert events == ["start"]
    assert events == ["start", "stop"]


def test_run_polls_for_every_update_type_without_dropping_pending_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        bot_app.Application, "run_polling", lambda self, **kw: calls.append(kw), raising=True
    )

    bot_app.run(settings_for(tmp_path))

    assert calls == [
        {
            "allowed_updates": Update.ALL_TYPES,
            "drop_pending_updates": False,
            "bootstrap_retries": bot_app.BOOTSTRAP_RETRIES,
        }
    ]


def test_run_freezes_what_start_up_made_and_collects_the_young_less_often(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """And a thread holding a SQLite write lock gets the GIL back from the loop sooner."""
    monkeypatch.setattr(bot_app.Application, "run_polling", lambda self, **kw: None)
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    assert sys.getswitchinterval() != collector.SWITCH_INTERVAL

    bot_app.run(settings_for(tmp_path))

    assert gc.get_freeze_count() > 10_000  # the modules, classes and the Application
    assert gc.get_threshold()[0] == collector.FIRST_GENERATION
    assert sys.getswitchinterval() == collector.SWITCH_INTERVAL


def test_the_bot_keeps_a_bounded_pool_of_api_connections_where_a_burst_waits(
    tmp_path: Any,
) -> None:
    """A meeting's burst must not grow the pool to hundreds of connections (httpx scans the
    pool on every request), and a request waiting for one must not fail after PTB's 1 s."""
    settings = settings_for(tmp_path).model_copy(update={"api_connections": 12})
    application = bot_app.build_application(settings, engine_for(settings.database_url))
    client = application.bot.request._client  # type: ignore[attr-defined]
    pool = client._transport._pool  # httpx's connection pool (private: no public accessor)
    assert pool._max_connections == 12
    assert client.timeout.pool == bot_app.API_POOL_WAIT > 1.0


def test_run_with_a_webhook_listens_on_the_public_path_with_a_generated_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    pytest.importorskip("tornado", reason="webhook mode needs python-telegram-bot[webhooks]")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(
        bot_app.Application, "run_webhook", lambda self, **kw: calls.append(kw), raising=True
    )

    bot_app.run(
        settings_for(tmp_path), webhook_url="https://bot.example.org/ceping/hook", port=9000
    )
    bot_app.run(settings_for(tmp_path), webhook_url="https://bot.example.org/x", secret_token="s-1")

    first, second = calls
    assert first["url_path"] == "ceping/hook" and first["port"] == 9000
    assert first["listen"] == "127.0.0.1"
    assert len(first["secret_token"]) >= 32
    assert second["secret_token"] == "s-1"


async def test_webhook_mode_refuses_requests_without_the_secret_header(
    engine: Engine, clock: FakeClock, world: World
) -> None:
    pytest.importorskip("tornado", reason="webhook mode needs python-telegram-bot[webhooks]")
    from tests.bot_fixtures import bot_settings

    async with FakeBotApi() as api:
        app = bot_app.build_application(bot_settings(api), engine, clock=clock)
        port = free_port()
        url = f"http://127.0.0.1:{port}/ceping/hook"
        async with app:
            assert app.updater is not None
            await app.updater.start_webhook(
                listen="127.0.0.1",
                port=port,
                url_path="ceping/hook",
                webhook_url=url,
                secret_token="the-secret",
            )
            await app.start()
            try:
                async with httpx.AsyncClient() as client:
                    bare = await client.post(url, json=text_update(1, 1001, "/lang"))
                    wrong = await client.post(
                        url, json=text_update(2, 1001, "/lang"), headers=secret_header("nope")
                    )
                    good = await client.post(
                        url, json=text_update(3, 1001, "/help"), headers=secret_header("the-secret")
                    )
                sent = await api.wait_for_request("sendMessage", lambda p: p["chat_id"] == 1001)
            finally:
                await app.updater.stop()
                await app.stop()

    assert (bare.status_code, wrong.status_code, good.status_code) == (403, 403, 200)
    assert sent["text"].startswith(t("help.header"))
    assert api.webhook.get("url") == url


def test_webhook_mode_without_its_dependency_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(bot_app.importlib.util, "find_spec", lambda name: None)

    with pytest.raises(bot_app.WebhookUnavailable, match="webhooks"):
        bot_app.run(settings_for(tmp_path), webhook_url="https://bot.example.org/hook")


# --- Helpers --------------------------------------------------------------------------------


def settings_for(tmp_path: Any) -> Settings:
    """Settings with a token and a throwaway database (never contacted by these tests)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_token="42:SECRET-FOR-RUN-TESTS",  # type: ignore[arg-type]
        database_url=f"sqlite:///{tmp_path}/run.db",
    )


def settings_for_token() -> Settings:
    """Settings with nothing but a token."""
    return Settings(_env_file=None, bot_token="42:SECRET-FOR-RUN-TESTS")  # type: ignore[call-arg,arg-type]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def secret_header(value: str) -> dict[str, str]:
    """The header Telegram puts on webhook requests."""
    return {"X-Telegram-Bot-Api-Secret-Token": value}


def text_update(update_id: int, user_id: int, text: str) -> dict[str, Any]:
    """A private text message as Telegram posts it to a webhook."""
    user = {"id": user_id, "is_bot": False, "first_name": "用户", "language_code": "zh-hans"}
    entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    message = {
        "message_id": update_id,
        "date": 1_770_000_000,
        "chat": {"id": user_id, "type": "private", "first_name": "用户"},
        "from": user,
        "text": text,
        "entities": entities if text.startswith("/") else [],
    }
    return {"update_id": update_id, "message": message}
