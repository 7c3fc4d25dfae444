"""Registration stories: personal link, phone number, branch link, and every way it is refused."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, func, select

from storage.links import token_digest
from storage.models import Assignment, AuditLog, Invitation, Person, PersonRole, TelegramAccount
from surveys.i18n import t

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness


def account_of(session: Session, user_id: int) -> TelegramAccount | None:
    """The binding of a Telegram user, read fresh from the database."""
    return session.exec(
        select(TelegramAccount).where(TelegramAccount.telegram_user_id == user_id)
    ).first()


def audit_rows(session: Session, action: str) -> list[AuditLog]:
    """Audit rows of one action, oldest first."""
    return list(
        session.exec(select(AuditLog).where(AuditLog.action == action).order_by(col(AuditLog.id)))
    )


def accounts(session: Session) -> int:
    """How many Telegram accounts are bound."""
    return session.exec(select(func.count()).select_from(TelegramAccount)).one()


# --- The three ways in ----------------------------------------------------------------------


async def test_a_member_opens_her_personal_link_and_is_told_who_she_is(bot: BotHarness) -> None:
    phone = bot.phone(1001)

    reply = await phone.send(f"/start {bot.world.tokens['member']}")

    assert "张党员" in reply.text
    assert "红星村党支部" in reply.text
    assert t("role.member") in reply.text
    with bot.session() as session:
        account = account_of(session, 1001)
        assert account is not None
        assert account.person_id == bot.world.people["member"]
        assert account.bound_via == "invitation"
        assert account.chat_id == 1001
        assert account.language == "zh_CN"
        invitation = session.get(Invitation, token_digest(bot.world.tokens["member"]))
        assert invitation is not None and invitation.uses == 1
        (row,) = audit_rows(session, "register.link")
        assert (row.outcome, row.actor_telegram_id) == ("ok", 1001)
        assert row.actor_person_id == bot.world.people["member"]
        assert row.at == bot.clock.now  # the bot's clock, not the wall clock


async def test_a_secretary_shares_her_phone_number_and_the_button_goes_away(
    bot: BotHarness,
) -> None:
    phone = bot.phone(1002)

    welcome = await phone.send("/start")
    assert t("registration.welcome") in welcome.text
    assert phone.reply_keyboard == [[t("registration.share_phone_button")]]

    # Telegram sends the number in international form, with or without the plus.
    reply = await phone.press_reply_button(
        t("registration.share_phone_button"), phone_number="8613800000002"
    )

    assert "李书记" in reply.text
    # Her three roles, most responsible first.
    assert "、".join([t("role.secretary"), t("role.committee"), t("role.member")]) in reply.text
    assert phone.reply_keyboard is None
    with bot.session() as session:
        account = account_of(session, 1002)
        assert account is not None
        assert account.person_id == bot.world.people["secretary"]
        assert account.bound_via == "contact"
        assert [r.outcome for r in audit_rows(session, "register.contact")] == ["ok"]


async def test_a_villager_opens_the_branch_link_and_takes_part_anonymously(
    bot: BotHarness,
) -> None:
    phone = bot.phone(2001)

    reply = await phone.send(f"/start {bot.world.branch_token}")

    assert "红星村党支部" in reply.text
    with bot.session() as session:
        account = account_of(session, 2001)
        assert account is not None and account.bound_via == "branch_link"
        person = session.get(Person, account.person_id)
        assert person is not None
        assert person.anonymous and person.phone is None
        assert person.org_id == bot.world.orgs["village"]
        roles = session.exec(select(PersonRole.role).where(PersonRole.person_id == person.id))
        assert list(roles) == ["mass"]
        (assignment,) = session.exec(select(Assignment).where(Assignment.person_id == person.id))
        assert assignment.round_id == bot.world.round_id
        assert assignment.org_id == bot.world.orgs["village"]
        assert (assignment.instrument_id, assignment.audience) == ("satisfaction", "masses")


async def test_the_branch_link_admits_only_as_many_as_the_branch_has_representatives(
    bot: BotHarness,
) -> None:
    # 红星村 has 2 village representatives.
    for user_id in (2001, 2002):
        await bot.phone(user_id).send(f"/start {bot.world.branch_token}")

    third = await bot.phone(2003).send(f"/start {bot.world.branch_token}")

    assert t("registration.branch_full", branch="红星村党支部", count=2) in third.text
    with bot.session() as session:
        assert account_of(session, 2003) is None
        anonymous = session.exec(select(func.count()).where(col(Person.anonymous))).one()
        assert anonymous == 2


async def test_five_villagers_tapping_the_branch_link_at_once_fill_exactly_two_places(
    bot: BotHarness,
) -> None:
    phones = [bot.phone(3000 + n) for n in range(5)]
    update_ids = [p.send_nowait(f"/start {bot.world.branch_token}") for p in phones]

    replies = await asyncio.gather(*(p.collect(u) for p, u in zip(phones, update_ids, strict=True)))

    full = t("registration.branch_full", branch="红星村党支部", count=2)
    assert sum(full in r.text for r in replies) == 3
    with bot.session() as session:
        assert accounts(session) == 2
        invitation = session.get(Invitation, token_digest(bot.world.branch_token))
        assert invitation is not None and invitation.uses == 2


async def test_two_phones_opening_one_personal_link_at_once_bind_exactly_one(
    bot: BotHarness,
) -> None:
    phones = [bot.phone(4001), bot.phone(4002)]
    token = bot.world.tokens["member2"]
    update_ids = [p.send_nowait(f"/start {token}") for p in phones]

    replies = await asyncio.gather(*(p.collect(u) for p, u in zip(phones, update_ids, strict=True)))

    bound = t("registration.bound", name="赵党员", branch="红星村党支部", roles=t("role.member"))
    assert sum(bound in r.text for r in replies) == 1
    with bot.session() as session:
        bound = session.exec(
            select(TelegramAccount).where(TelegramAccount.person_id == bot.world.people["member2"])
        ).all()
        assert len(bound) == 1


# --- Refusals -------------------------------------------------------------------------------


async def test_a_link_used_up_earlier_is_explained(bot: BotHarness) -> None:
    token = bot.world.tokens["member"]
    await bot.phone(1001).send(f"/start {token}")
    # The organizer removes the binding (she changed phones); the old link stays used.
    with bot.session() as session:
        account = account_of(session, 1001)
        session.delete(account)
        session.commit()

    reply = await bot.phone(1009).send(f"/start {token}")

    assert t("registration.token_used") in reply.text
    with bot.session() as session:
        assert account_of(session, 1009) is None


async def test_someone_else_opening_a_link_already_registered_learns_no_name(
    bot: BotHarness,
) -> None:
    # Issue 10, item 4: the second use of a personal link named its owner.
    token = bot.world.tokens["member"]
    await bot.phone(1001).send(f"/start {token}")

    reply = await bot.phone(1009).send(f"/start {token}")

    assert reply.text == t("hardening.link_taken")
    assert "张党员" not in reply.text
    with bot.session() as session:
        assert account_of(session, 1009) is None
        outcomes = [r.outcome for r in audit_rows(session, "register.link")]
        assert outcomes == ["ok", "refused"]


async def test_an_expired_link_is_explained_and_binds_nobody(bot: BotHarness) -> None:
    bot.clock.advance(days=8)  # invitations last 7 days

    reply = await bot.phone(1001).send(f"/start {bot.world.tokens['member']}")

    assert t("registration.token_expired") in reply.text
    with bot.session() as session:
        assert account_of(session, 1001) is None
        invitation = session.get(Invitation, token_digest(bot.world.tokens["member"]))
        assert invitation is not None and invitation.uses == 0


async def test_a_link_one_day_before_expiry_still_works(bot: BotHarness) -> None:
    bot.clock.advance(days=6)

    reply = await bot.phone(1001).send(f"/start {bot.world.tokens['member']}")

    assert "张党员" in reply.text


async def test_a_made_up_link_is_explained(bot: BotHarness) -> None:
    reply = await bot.phone(1001).send("/start not-a-real-token")

    assert t("registration.token_unknown") in reply.text


async def test_sharing_someone_elses_contact_is_refused_politely(bot: BotHarness) -> None:
    phone = bot.phone(1002)
    await phone.send("/start")

    # The secretary's number, but sent as another Telegram user's contact card.
    reply = await phone.share_contact(phone_number="13800000002", user_id=9999)

    assert t("registration.contact_not_own") in reply.text
    assert phone.reply_keyboard == [[t("registration.share_phone_button")]]
    with bot.session() as session:
        assert accounts(session) == 0
        (row,) = audit_rows(session, "register.contact")
        assert row.outcome == "refused"


async def test_a_number_not_on_the_roster_is_sent_to_the_secretary(bot: BotHarness) -> None:
    phone = bot.phone(1003)
    await phone.send("/start")

    reply = await phone.share_contact(phone_number="+86 139 9999 9999")

    assert t("registration.phone_unknown", phone="13999999999") in reply.text
    assert phone.reply_keyboard is None
    with bot.session() as session:
        assert accounts(session) == 0


async def test_a_registered_account_cannot_take_a_second_persons_link(bot: BotHarness) -> None:
    phone = await bot.register(1001, "member")

    reply = await phone.send(f"/start {bot.world.tokens['secretary']}")

    assert t("registration.already_registered", name="张党员") in reply.text
    with bot.session() as session:
        account = account_of(session, 1001)
        assert account is not None and account.person_id == bot.world.people["member"]
        invitation = session.get(Invitation, token_digest(bot.world.tokens["secretary"]))
        assert invitation is not None and invitation.uses == 0


async def test_a_second_phone_cannot_claim_a_number_already_registered(bot: BotHarness) -> None:
    await bot.register(1001, "member")

    reply = await bot.phone(1005).share_contact(phone_number="13800000003")

    assert t("registration.person_taken", name="张党员") in reply.text
    with bot.session() as session:
        assert account_of(session, 1005) is None


async def test_after_the_organizer_releases_her_old_account_she_registers_from_a_new_phone(
    bot: BotHarness, capsys: Any, monkeypatch: Any, database_url: str
) -> None:
    from bot.cli import main

    await bot.register(1001, "member")
    monkeypatch.setenv("CEPING_DATABASE_URL", database_url)

    assert main(["unbind", bot.world.phones["member"]]) == 0
    new_phone = bot.phone(1006)
    reply = await new_phone.share_contact(phone_number=bot.world.phones["member"])

    assert t("cli.unbind.done", name="张党员") in capsys.readouterr().out
    assert "张党员" in reply.text
    with bot.session() as session:
        assert account_of(session, 1001) is None
        account = account_of(session, 1006)
        assert account is not None and account.person_id == bot.world.people["member"]
        (row,) = audit_rows(session, "registration.unbind")
        assert row.detail["telegram_user_id"] == 1001


def test_unbinding_an_unknown_or_unbound_number_changes_nothing(
    bot: BotHarness, capsys: Any, monkeypatch: Any, database_url: str
) -> None:
    from bot.cli import main

    monkeypatch.setenv("CEPING_DATABASE_URL", database_url)

    unknown = main(["unbind", "13700000000"])
    unbound = main(["unbind", bot.world.phones["member"]])

    err = capsys.readouterr().err
    assert (unknown, unbound) == (1, 1)
    assert t("cli.unbind.unknown_phone", phone="13700000000") in err
    assert t("cli.unbind.not_bound", name="张党员") in err
    with bot.session() as session:
        assert audit_rows(session, "registration.unbind") == []


async def test_opening_her_own_link_again_welcomes_her_back(bot: BotHarness) -> None:
    phone = await bot.register(1001, "member")

    again = await phone.send(f"/start {bot.world.tokens['member']}")
    plain = await phone.send("/start")

    assert t("registration.welcome_back", name="张党员") in again.text
    assert t("registration.welcome_back", name="张党员") in plain.text
    assert phone.reply_keyboard is None  # no phone button for someone registered


# --- Blocking and coming back ---------------------------------------------------------------


def membership_update(user_id: int, old: str, new: str, date: int) -> dict[str, Any]:
    """The my_chat_member update Telegram sends when a user blocks or restarts the bot."""
    user = {"id": user_id, "is_bot": False, "first_name": "用户", "language_code": "zh-hans"}
    bot_user = {"id": 123456, "is_bot": True, "first_name": "Ceping Test Bot"}
    return {
        "my_chat_member": {
            "chat": {"id": user_id, "type": "private", "first_name": "用户"},
            "from": user,
            "date": date,
            "old_chat_member": {"status": old, "user": bot_user}
            | ({"until_date": 0} if old == "kicked" else {}),
            "new_chat_member": {"status": new, "user": bot_user}
            | ({"until_date": 0} if new == "kicked" else {}),
        }
    }


async def test_a_member_who_blocked_the_bot_comes_back_and_is_greeted(bot: BotHarness) -> None:
    phone = await bot.register(1001, "member")
    date = int(bot.clock.now.timestamp())

    bot.api.block(1001)
    blocked = bot.api.push_update(membership_update(1001, "member", "kicked", date))
    await bot.api.wait_processed(blocked)
    with bot.session() as session:
        account = account_of(session, 1001)
        assert account is not None and account.blocked_at == bot.clock.now

    bot.clock.advance(days=1)
    bot.api.unblock(1001)
    returned = bot.api.push_update(membership_update(1001, "kicked", "member", date + 86400))
    await bot.api.wait_processed(returned)

    assert phone.last_bot_message is not None
    with bot.session() as session:
        account = account_of(session, 1001)
        assert account is not None and account.blocked_at is None
        actions = [r.action for r in session.exec(select(AuditLog).order_by(col(AuditLog.id)))]
        assert actions[-2:] == ["bot.blocked", "bot.unblocked"]
    greeting = t("registration.welcome_back", name="张党员")
    assert any(greeting in m.get("text", "") for m in phone.history)
