"""``ceping invite``: a personal link (or one capped link per branch) for each row."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bot.cli.env import EXIT_OK, CliEnv, CliError, database
from bot.invitations import InviteRow, write_invitations_csv, write_invitations_xlsx
from storage.db import Session, transaction
from storage.lookups import (
    organization_named,
    organizations,
    registered_person_ids,
    roles_by_person,
    roster_people,
)
from storage.models import Person
from storage.reports import org_names
from storage.rounds import (
    branch_link_capacity,
    branch_link_for,
    branch_seats_taken,
    current_round,
    get_round,
    invitation_for,
)
from storage.settings import Settings
from storage.types import utcnow
from surveys.categories import Role, parse_role

# --- invite ----------------------------------------------------------------------------------


def _bot_username(settings: Settings) -> str:
    """CEPING_BOT_USERNAME, else ask Telegram (getMe) when a token is set."""
    if settings.bot_username:
        return settings.bot_username.lstrip("@")
    if settings.bot_token is None or not settings.bot_token.get_secret_value().strip():
        raise CliError("cli.invite.no_username")
    try:
        return asyncio.run(_ask_bot_username(settings))
    except Exception:  # any network or API failure: the message might carry the token
        raise CliError("cli.invite.getme_failed") from None


async def _ask_bot_username(settings: Settings) -> str:
    """The bot's username from Telegram's getMe."""
    from telegram import Bot

    async with Bot(settings.require_token(), base_url=settings.bot_api_url) as bot:
        return str(bot.username)


def _people_to_invite(
    session: Session, branch: str | None, role: Role | None
) -> list[tuple[Person, list[tuple[str, int]]]]:
    """Roster people (with their roles) narrowed to one branch and/or one role."""
    people = roster_people(session=session)
    roles = roles_by_person(session=session)
    org_id = None
    if branch is not None:
        org = organization_named(session=session, name=branch)
        if org is None:
            raise CliError("cli.invite.unknown_branch", name=branch)
        org_id = org.id
    chosen = []
    for person in people:
        held = roles.get(person.id or 0, [])
        if org_id is not None and person.org_id != org_id and all(o != org_id for _, o in held):
            continue
        if role is not None and all(r != role.value for r, _ in held):
            continue
        chosen.append((person, held))
    return chosen


def _invite_rows(session: Session, args: argparse.Namespace, env: CliEnv) -> list[InviteRow]:
    """Invitations for the chosen people (reusing unused ones), as sheet rows."""
    role = None
    if args.role:
        try:
            role = parse_role(args.role)
        except ValueError:
            raise CliError("cli.invite.unknown_role", role=args.role) from None
    round_id = _invite_round(session, args.round)
    username = _bot_username(env.settings)
    names = org_names(session=session)
    rows = []
    now = utcnow()
    registered = registered_person_ids(session=session)
    skipped = 0
    for person, held in _people_to_invite(session, args.branch, role):
        if person.id in registered and not args.include_registered:
            skipped += 1  # already bound to Telegram: a new link would only be refused
            continue
        invitation = invitation_for(
            session,
            person_id=person.id,  # type: ignore[arg-type]
            round_id=round_id,
            now=now,
            days=env.settings.invitation_days,
        )
        order = list(Role)
        held_roles = sorted({Role(r) for r, _ in held}, key=order.index)
        role_names = [env.text(f"role.{role.value}") for role in held_roles]
        rows.append(
            InviteRow(
                name=person.name,
                phone=person.phone or "",
                org=names.get(person.org_id, ""),
                roles="、".join(role_names),
                link=f"https://t.me/{username}?start={invitation.token}",
            )
        )
    if skipped:
        env.say("cli.invite.skipped_registered", count=skipped)
    return rows


def _branch_link_rows(session: Session, args: argparse.Namespace, env: CliEnv) -> list[InviteRow]:
    """One branch link per graded branch (or the one --branch names), seats in the roles column."""
    round_id = _invite_round(session, args.round)
    username = _bot_username(env.settings)
    orgs = [
        org
        for org in organizations(session=session, name=args.branch)
        if org.category != "committee"
    ]
    if args.branch is not None and not orgs:
        raise CliError("cli.invite.unknown_branch", name=args.branch)
    rows, now = [], utcnow()
    for org in orgs:
        if branch_link_capacity(org) < 1:
            continue
        link = branch_link_for(
            session,
            org_id=org.id,  # type: ignore[arg-type]
            round_id=round_id,
            now=now,
            days=env.settings.invitation_days,
        )
        # Seats belong to the branch and round, across every link it was given.
        capacity = branch_link_capacity(org)
        taken = branch_seats_taken(session, org_id=org.id, round_id=round_id)  # type: ignore[arg-type]
        seats = env.text("cli.invite.seats", left=max(capacity - taken, 0), total=capacity)
        url = f"https://t.me/{username}?start={link.token}"
        rows.append(
            InviteRow(
                name=env.text("cli.invite.branch_link"),
                phone="",
                org=org.name,
                roles=seats,
                link=url,
            )
        )
    return rows


def _invite_round(session: Session, round_id: int | None) -> int | None:
    """The round named on the command line (checked), else the open round, else none."""
    if round_id is not None:
        get_round(session, round_id)
        return round_id
    open_now = current_round(session)
    return open_now.id if open_now else None


def cmd_invite(args: argparse.Namespace, env: CliEnv) -> int:
    """Write the invitation sheet: deep link and QR code per person."""
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise CliError("cli.invite.bad_out", path=args.out)
    with database(env) as engine, transaction(engine) as session:
        if args.branch_links:
            rows = _branch_link_rows(session, args, env)
        else:
            rows = _invite_rows(session, args, env)
        if not rows:
            raise CliError("cli.invite.nobody")
        try:
            if suffix == ".xlsx":
                write_invitations_xlsx(out, rows, env.locale)
            else:
                folder = write_invitations_csv(out, rows, env.locale)
        except OSError:
            raise CliError("cli.invite.cannot_write", path=args.out) from None
    env.say("cli.invite.written", count=len(rows), path=str(out))
    if suffix == ".csv":
        env.say("cli.invite.qr_folder", folder=str(folder))
    return EXIT_OK
