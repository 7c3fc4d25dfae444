"""Issue 10, items 2, 3, 4 and 8: forwarded privileged links, branch seats, tokens at rest."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from sqlmodel import Session, col, select

from storage.db import make_engine, transaction, upgrade
from storage.links import token_digest
from storage.models import AuditLog, Invitation, Organization, Person, TelegramAccount
from storage.rounds import InvitationExpired, create_branch_link, invitation_for, redeem_invitation
from surveys.i18n import t
from surveys.privileges import PRIVILEGED_ROLES, needs_phone_match
from tests.bot_fixtures import INVITATION_DAYS

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness


def _account(session: Session, user_id: int) -> TelegramAccount | None:
    return session.exec(
        select(TelegramAccount).where(TelegramAccount.telegram_user_id == user_id)
    ).first()


# --- Item 2: a privileged role is not taken by a forwarded link -----------------------------


def test_the_privileged_roles_are_the_ones_that_grade_or_sign() -> None:
    assert {"organizer", "inspector", "secretary"} <= PRIVILEGED_ROLES
    assert needs_phone_match(["member", "organizer"]) and not needs_phone_match(["member", "mass"])


async def test_a_forwarded_organizer_link_binds_nobody_and_the_organizer_still_can(
    bot: BotHarness,
) -> None:
    token = bot.world.tokens["organizer"]
    stranger = bot.phone(7001)

    asked = await stranger.send(f"/start {token}")
    assert t("hardening.link_needs_contact") in asked.text
    assert stranger.reply_keyboard, "the share-contact button is shown"
    refused = await stranger.share_contact()  # the stranger's own number, not the roster's

    assert refused.text == t("hardening.contact_mismatch")
    grades = await stranger.send("/grades")
    assert "王组织" not in grades.text
    with bot.session() as session:
        assert _account(session, 7001) is None
        refusals = session.exec(
            select(AuditLog.detail).where(AuditLog.action == "register.link_contact")
        ).all()
        assert [detail["outcome"] for detail in refusals] == ["contact_mismatch"]
    # The real organizer, with her roster phone, is bound by the same link.
    organizer = await bot.register(7002, "organizer")
    with bot.session() as session:
        account = _account(session, organizer.user_id)
        assert account is not None and account.person_id == bot.world.people["organizer"]
        assert account.bound_via == "invitation"


async def test_a_member_link_still_binds_by_the_link_alone(bot: BotHarness) -> None:
    reply = await bot.phone(7003).send(f"/start {bot.world.tokens['member']}")
    assert "张党员" in reply.text
    with bot.session() as session:
        assert _account(session, 7003) is not None


async def test_a_secretary_link_with_someone_elses_contact_card_is_refused(bot: BotHarness) -> None:
    phone = bot.phone(7004)
    await phone.send(f"/start {bot.world.tokens['secretary']}")
    reply = await phone.share_contact(phone_number=bot.world.phones["secretary"], user_id=9999)
    assert t("registration.contact_not_own") in reply.text
    with bot.session() as session:
        assert _account(session, 7004) is None


# --- Item 3: seats per branch and round, across every link ----------------------------------


async def test_a_reissued_branch_link_shares_the_branchs_seats(bot: BotHarness) -> None:
    with transaction(bot.engine) as session:
        second = create_branch_link(
            session,
            org_id=bot.world.orgs["village"],
            round_id=bot.world.round_id,
            now=bot.clock.now,
            days=INVITATION_DAYS,
        ).token
    tokens = [bot.world.branch_token, bot.world.branch_token, second, second]
    replies = [await bot.phone(7100 + n).send(f"/start {tok}") for n, tok in enumerate(tokens)]

    full = t("registration.branch_full", branch="红星村党支部", count=2)
    assert [full in reply.text for reply in replies] == [False, False, True, True]
    with bot.session() as session:
        anonymous = session.exec(select(Person).where(col(Person.anonymous).is_(True))).all()
        assert len(anonymous) == 2


# --- Item 4 is in tests/test_bot_registration.py (a used link names nobody) ----------------


# --- Item 8: tokens at rest -----------------------------------------------------------------


async def test_no_token_is_stored_in_plaintext(bot: BotHarness) -> None:
    with bot.session() as session:
        stored = set(session.exec(select(Invitation.token)).all())
    handed_out = {*bot.world.tokens.values(), bot.world.branch_token}
    assert not stored & handed_out
    assert {token_digest(token) for token in handed_out} <= stored


async def test_reprinting_an_invitation_retires_the_unused_one(bot: BotHarness) -> None:
    with transaction(bot.engine) as session:
        fresh = invitation_for(
            session,
            person_id=bot.world.people["member"],
            round_id=bot.world.round_id,
            now=bot.clock.now,
            days=INVITATION_DAYS,
        ).token
    with transaction(bot.engine) as session, pytest.raises(InvitationExpired):
        redeem_invitation(session, token=bot.world.tokens["member"], now=bot.clock.now)
    reply = await bot.phone(7200).send(f"/start {fresh}")
    assert "张党员" in reply.text


def test_migration_0006_hashes_the_tokens_already_stored(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0005")
    with transaction(engine) as session:  # the schema of 0005 is the models' (0006 adds none)
        org = Organization(name="村", category="village", members=3, representatives=2)
        session.add(org)
        session.flush()
        session.add(
            Invitation(
                token="plain-token",
                kind="branch",
                org_id=org.id,
                max_uses=2,
                expires_at=datetime(2099, 1, 1, tzinfo=UTC),
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
    upgrade(engine, "0006")
    with engine.connect() as connection:
        tokens = connection.execute(text("SELECT token FROM invitation")).scalars().all()
    assert tokens == [token_digest("plain-token")]
    engine.dispose()
