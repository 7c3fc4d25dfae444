"""The ``ceping`` command line: database, roster, rounds, invitations, the bot, the demo.

Every line meant for the organizer comes from the catalog (``cli.po``) in CEPING_LOCALE.
Bad input ends with one line on stderr and a non-zero exit code, never a traceback, and the
bot token is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import sys
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from sqlalchemy import Engine, case, func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select
from telegram.error import InvalidToken, NetworkError

from storage.db import alembic_config, current_revision, make_engine, transaction, upgrade
from storage.models import (
    Assignment,
    Organization,
    Person,
    PersonRole,
    Round,
    TelegramAccount,
)
from storage.roster import ImportReport, KindChanges, RosterFileError, import_roster
from storage.rounds import (
    RoundError,
    branch_link_capacity,
    branch_link_for,
    close_round,
    create_round,
    current_round,
    get_round,
    invitation_for,
    list_rounds,
    open_round,
    parse_options,
    parse_phase_time,
    round_phases,
    sync_assignments,
)
from storage.settings import Settings, SettingsError, load_settings
from storage.types import utcnow
from surveys.categories import Role, parse_role
from surveys.i18n import t
from surveys.roster import RosterProblem

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A refusal to show as one catalog line."""

    def __init__(self, key: str, exit_code: int = EXIT_FAILED, **params: object) -> None:
        super().__init__(key)
        self.key, self.exit_code, self.params = key, exit_code, params


class _UsageError(Exception):
    """argparse found the command line malformed."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports usage errors as one catalog line instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


@dataclass
class Context:
    """What every command needs: the settings and the locale to speak in."""

    settings: Settings
    locale: str

    def say(self, message: str, /, **params: object) -> None:
        """Print one catalog line to stdout."""
        print(t(message, self.locale, **params))

    def text(self, message: str, /, **params: object) -> str:
        """One catalog text."""
        return t(message, self.locale, **params)

    def local(self, moment: datetime | None) -> str:
        """A UTC time shown in the configured time zone."""
        if moment is None:
            return t("common.none", self.locale)
        return t("common.datetime", self.locale, value=moment.astimezone(self.settings.zone))


# --- Database --------------------------------------------------------------------------------


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    """An engine for one command, disposed afterwards."""
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _heads(engine: Engine) -> set[str]:
    """The schema revisions the code expects."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())


@contextmanager
def _database(context: Context) -> Iterator[Engine]:
    """The configured database, refused unless ``ceping init`` brought it to the latest schema."""
    with _engine(context.settings.database_url) as engine:
        if current_revision(engine) not in _heads(engine):
            raise CliError("cli.not_at_head")
        yield engine


# --- init ------------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace, context: Context) -> int:
    """Create or upgrade the schema."""
    with _engine(context.settings.database_url) as engine:
        upgrade(engine)
        context.say("cli.init.done", revision=current_revision(engine))
    return EXIT_OK


# --- import ----------------------------------------------------------------------------------


def problem_line(problem: RosterProblem, context: Context) -> str:
    """One roster problem as a line: where, which value, and why."""
    reason = context.text(f"roster.problem.{problem.code}")
    column = (
        context.text(f"roster.column.{problem.kind}.{problem.column}") if problem.column else ""
    )
    if problem.row is None:
        return context.text("cli.import.problem_sheet", sheet=problem.sheet, reason=reason)
    if problem.value is None:
        return context.text(
            "cli.import.problem_column",
            sheet=problem.sheet,
            row=problem.row,
            column=column,
            reason=reason,
        )
    return context.text(
        "cli.import.problem",
        sheet=problem.sheet,
        row=problem.row,
        column=column,
        value=problem.value,
        reason=reason,
    )


def _print_kind(kind: str, changes: KindChanges, context: Context) -> None:
    """Created / updated / unchanged of one kind, and what the file left out."""
    label = context.text(f"cli.import.kind.{kind}")
    context.say(
        "cli.import.kind",
        kind=label,
        created=len(changes.created),
        updated=len(changes.updated),
        unchanged=changes.unchanged,
    )
    for key, names in (
        ("cli.import.created", changes.created),
        ("cli.import.updated", changes.updated),
        ("cli.import.not_in_file", changes.not_in_file),
    ):
        if names:
            context.say(key, kind=label, names=_names(names, context))


def _names(names: list[str], context: Context, shown: int = 20) -> str:
    """The first names joined with 、, and how many more there are."""
    text = "、".join(names[:shown])
    if len(names) > shown:
        text += context.text("cli.import.and_more", count=len(names) - shown)
    return text


def print_import_report(report: ImportReport, context: Context) -> None:
    """The report of an accepted import."""
    _print_kind("organizations", report.organizations, context)
    _print_kind("people", report.people, context)
    context.say("cli.import.changes", count=report.changes)
    if report.dry_run:
        context.say("cli.import.dry_run")


def cmd_import(args: argparse.Namespace, context: Context) -> int:
    """Import the roster, all or nothing; add assignments the change calls for."""
    if len(args.files) not in (1, 2):
        raise RosterFileError("which_files")
    paths = [Path(name) for name in args.files]
    with _database(context) as engine, transaction(engine) as session:
        report = import_roster(session, paths, now=utcnow(), dry_run=args.dry_run)
        if report.ok and not args.dry_run:
            synced = _sync_rounds(session)
    if not report.ok:
        for problem in report.problems:
            print(problem_line(problem, context), file=sys.stderr)
        raise CliError("cli.import.rejected", count=len(report.problems))
    print_import_report(report, context)
    if not args.dry_run:
        for name, added in synced:
            context.say("cli.import.synced", round=name, count=added)
    return EXIT_OK


def _sync_rounds(session: Session) -> list[tuple[str, int]]:
    """Add missing assignments to every round not yet closed (a roster change adds people)."""
    synced = []
    for round_ in list_rounds(session):
        if round_.status != "closed" and round_.id is not None:
            added = sync_assignments(session, round_.id)
            if added:
                synced.append((round_.name, added))
    return synced


# --- round -----------------------------------------------------------------------------------


def _deadline_lines(session: Session, round_id: int, context: Context) -> None:
    """Each phase's window in local time."""
    for phase in round_phases(session, round_id):
        name = context.text(f"phase.{phase.phase}")
        if phase.opens_at is None:
            context.say("cli.round.phase_line", phase=name, deadline=context.local(phase.deadline))
        else:
            context.say(
                "cli.round.phase_line_opens",
                phase=name,
                deadline=context.local(phase.deadline),
                opens=context.local(phase.opens_at),
            )


def cmd_round_create(args: argparse.Namespace, context: Context) -> int:
    """Create a round (and open it with --open)."""
    zone = context.settings.zone
    deadlines = dict(parse_phase_time(text, zone) for text in args.deadline)
    opens_at = dict(parse_phase_time(text, zone) for text in args.opens or [])
    options = parse_options(args.option or [])
    now = utcnow()
    with _database(context) as engine, transaction(engine) as session:
        round_ = create_round(
            session,
            name=args.name,
            deadlines=deadlines,
            options=options,
            opens_at=opens_at,
            now=now,
        )
        assert round_.id is not None
        if args.open:
            open_round(session, round_id=round_.id, now=now)
        count = _assignment_count(session, round_.id)
        context.say("cli.round.created", id=round_.id, name=round_.name, assignments=count)
        _deadline_lines(session, round_.id, context)
        if args.open:
            context.say("cli.round.opened", id=round_.id, name=round_.name)
    return EXIT_OK


def _assignment_count(session: Session, round_id: int) -> int:
    """How many assignments a round has."""
    return int(
        session.exec(
            select(func.count()).select_from(Assignment).where(Assignment.round_id == round_id)
        ).one()
    )


def cmd_round_list(args: argparse.Namespace, context: Context) -> int:
    """Every round with its status, assignments and deadlines."""
    with _database(context) as engine, transaction(engine) as session:
        rounds = list_rounds(session)
        if not rounds:
            context.say("cli.round.none")
        submitted = func.sum(case((col(Assignment.status) == "submitted", 1), else_=0))
        for round_ in rounds:
            assert round_.id is not None
            total, done = session.exec(
                select(func.count(), submitted).where(Assignment.round_id == round_.id)
            ).one()
            context.say(
                "cli.round.list_line",
                id=round_.id,
                name=round_.name,
                status=context.text(f"cli.round.status.{round_.status}"),
                assignments=total,
                submitted=done or 0,
            )
            _deadline_lines(session, round_.id, context)
    return EXIT_OK


def cmd_round_open(args: argparse.Namespace, context: Context) -> int:
    """Open a round."""
    with _database(context) as engine, transaction(engine) as session:
        round_ = open_round(session, round_id=args.id, now=utcnow())
        context.say("cli.round.opened", id=round_.id, name=round_.name)
    return EXIT_OK


def cmd_round_close(args: argparse.Namespace, context: Context) -> int:
    """Close a round."""
    with _database(context) as engine, transaction(engine) as session:
        round_ = close_round(session, round_id=args.id, now=utcnow())
        context.say("cli.round.closed", id=round_.id, name=round_.name)
    return EXIT_OK


# --- invite ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InviteRow:
    """One line of the invitation sheet."""

    name: str
    phone: str
    org: str
    roles: str
    link: str


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
    people = session.exec(
        select(Person).where(col(Person.anonymous).is_(False)).order_by(Person.org_id, Person.id)
    ).all()
    roles: dict[int, list[tuple[str, int]]] = {}
    for person_id, role_name, org_id in session.exec(
        select(PersonRole.person_id, PersonRole.role, PersonRole.org_id).order_by(PersonRole.id)
    ).all():
        roles.setdefault(person_id, []).append((role_name, org_id))
    org_id = None
    if branch is not None:
        org = session.exec(select(Organization).where(Organization.name == branch)).first()
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


def _invite_rows(session: Session, args: argparse.Namespace, context: Context) -> list[InviteRow]:
    """Invitations for the chosen people (reusing unused ones), as sheet rows."""
    role = None
    if args.role:
        try:
            role = parse_role(args.role)
        except ValueError:
            raise CliError("cli.invite.unknown_role", role=args.role) from None
    round_id = _invite_round(session, args.round)
    username = _bot_username(context.settings)
    org_names = dict(session.exec(select(Organization.id, Organization.name)).all())
    rows = []
    now = utcnow()
    registered = set(session.exec(select(TelegramAccount.person_id)).all())
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
            days=context.settings.invitation_days,
        )
        order = list(Role)
        held_roles = sorted({Role(r) for r, _ in held}, key=order.index)
        role_names = [context.text(f"role.{role.value}") for role in held_roles]
        rows.append(
            InviteRow(
                name=person.name,
                phone=person.phone or "",
                org=org_names.get(person.org_id, ""),
                roles="、".join(role_names),
                link=f"https://t.me/{username}?start={invitation.token}",
            )
        )
    if skipped:
        context.say("cli.invite.skipped_registered", count=skipped)
    return rows


def _branch_link_rows(
    session: Session, args: argparse.Namespace, context: Context
) -> list[InviteRow]:
    """One branch link per graded branch (or the one --branch names), seats in the roles column."""
    round_id = _invite_round(session, args.round)
    username = _bot_username(context.settings)
    statement = select(Organization).order_by(Organization.id)
    if args.branch is not None:
        statement = statement.where(Organization.name == args.branch)
    orgs = [org for org in session.exec(statement).all() if org.category != "committee"]
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
            days=context.settings.invitation_days,
        )
        seats = context.text(
            "cli.invite.seats", left=link.max_uses - link.uses, total=link.max_uses
        )
        url = f"https://t.me/{username}?start={link.token}"
        rows.append(
            InviteRow(
                name=context.text("cli.invite.branch_link"),
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


def _qr_png(link: str) -> bytes:
    """A QR code of the link as PNG bytes."""
    import qrcode

    image = qrcode.make(link, box_size=4, border=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _invite_headers(context: Context) -> list[str]:
    """The column titles of the invitation sheet."""
    return [
        context.text(f"cli.invite.column.{key}")
        for key in ("name", "phone", "org", "roles", "link", "qr")
    ]


def write_invitations_xlsx(path: Path, rows: Sequence[InviteRow], context: Context) -> None:
    """An XLSX with one row per person and the QR code embedded beside the link."""
    from openpyxl import Workbook
    from openpyxl.drawing.image import Image

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = context.text("cli.invite.sheet")
    sheet.append(_invite_headers(context))
    for letter, width in zip("ABCDEF", (12, 14, 24, 20, 60, 18), strict=True):
        sheet.column_dimensions[letter].width = width
    for index, row in enumerate(rows, start=2):
        sheet.append([row.name, row.phone, row.org, row.roles, row.link])
        image = Image(io.BytesIO(_qr_png(row.link)))
        image.width = image.height = 110
        sheet.add_image(image, f"F{index}")
        sheet.row_dimensions[index].height = 86
    workbook.save(path)


def write_invitations_csv(path: Path, rows: Sequence[InviteRow], context: Context) -> Path:
    """A CSV (UTF-8 with BOM, so Excel reads it) and a folder of QR code PNGs beside it."""
    folder = path.with_name(f"{path.stem}_qr")
    folder.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_invite_headers(context))
        for index, row in enumerate(rows, start=1):
            picture = f"{index:04d}_{row.phone or 'x'}.png"
            (folder / picture).write_bytes(_qr_png(row.link))
            writer.writerow([row.name, row.phone, row.org, row.roles, row.link, picture])
    return folder


def cmd_invite(args: argparse.Namespace, context: Context) -> int:
    """Write the invitation sheet: deep link and QR code per person."""
    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise CliError("cli.invite.bad_out", path=args.out)
    with _database(context) as engine, transaction(engine) as session:
        if args.branch_links:
            rows = _branch_link_rows(session, args, context)
        else:
            rows = _invite_rows(session, args, context)
        if not rows:
            raise CliError("cli.invite.nobody")
        try:
            if suffix == ".xlsx":
                write_invitations_xlsx(out, rows, context)
            else:
                folder = write_invitations_csv(out, rows, context)
        except OSError:
            raise CliError("cli.invite.cannot_write", path=args.out) from None
    context.say("cli.invite.written", count=len(rows), path=str(out))
    if suffix == ".csv":
        context.say("cli.invite.qr_folder", folder=str(folder))
    return EXIT_OK


def cmd_unbind(args: argparse.Namespace, context: Context) -> int:
    """Release a person's Telegram account so they can register again with another."""
    from storage.registration import UnbindOutcome, unbind_by_phone

    with _database(context) as engine, transaction(engine) as session:
        outcome, name = unbind_by_phone(session, phone=args.phone, now=utcnow())
    if outcome is UnbindOutcome.UNKNOWN_PHONE:
        raise CliError("cli.unbind.unknown_phone", phone=args.phone)
    if outcome is UnbindOutcome.NOT_BOUND:
        raise CliError("cli.unbind.not_bound", name=name)
    context.say("cli.unbind.done", name=name)
    return EXIT_OK


# --- surveys ---------------------------------------------------------------------------------


def cmd_surveys_check(args: argparse.Namespace, context: Context) -> int:
    """Validate an instrument file and list every problem."""
    from surveys.instruments import InstrumentError, load_instrument_file

    path = Path(args.file)
    if not path.is_file():
        raise CliError("cli.surveys.not_found", path=args.file)
    try:
        instrument = load_instrument_file(path)
    except InstrumentError as error:
        for problem in error.problems:
            print(
                context.text(
                    "cli.surveys.problem",
                    path=problem.file,
                    where=problem.path,
                    message=problem.message,
                ),
                file=sys.stderr,
            )
        raise CliError("cli.surveys.rejected", count=len(error.problems)) from None
    context.say(
        "cli.surveys.ok",
        path=args.file,
        title=instrument.title.get(context.locale),
        key=instrument.key,
        items=len(instrument.items),
    )
    return EXIT_OK


def cmd_surveys_show(args: argparse.Namespace, context: Context) -> int:
    """Print an instrument's sections, items, points and options."""
    from surveys.instruments import get_instrument, get_instrument_by_key

    try:
        instrument = get_instrument_by_key(args.id) if "@" in args.id else get_instrument(args.id)
    except (KeyError, ValueError):
        raise CliError("cli.surveys.unknown", id=args.id) from None
    locale = context.locale
    kind = "anonymous" if instrument.anonymous else "named"
    context.say(
        "cli.surveys.show.title",
        title=instrument.title.get(locale),
        key=instrument.key,
        phase=context.text(f"phase.{instrument.phase}"),
        kind=context.text(f"cli.surveys.show.{kind}"),
    )
    for section in instrument.sections:
        if section.max_points:
            context.say(
                "cli.surveys.show.section",
                title=section.title.get(locale),
                points=section.max_points,
            )
        else:
            context.say("cli.surveys.show.section_plain", title=section.title.get(locale))
        for item in section.items:
            points = (
                context.text("cli.surveys.show.points", points=item.max_points)
                if item.max_points is not None
                else ""
            )
            context.say(
                "cli.surveys.show.item", id=item.id, text=item.text.get(locale), points=points
            )
            for option in item.options:
                context.say("cli.surveys.show.option", text=option.text.get(locale))
    return EXIT_OK


# --- The bot, the jobs and the export (imported when used: `ceping import` needs none) --------


def cmd_run(args: argparse.Namespace, context: Context) -> int:
    """Run the Telegram bot (long polling, or a webhook with --webhook-url)."""
    from bot.app import WebhookUnavailable, run

    with _database(context):
        pass
    options = {"webhook_url": args.webhook_url, "listen": args.listen, "port": args.port}
    try:
        run(
            context.settings,
            **{name: value for name, value in options.items() if value is not None},
        )
    except InvalidToken:
        raise CliError("cli.run.invalid_token") from None
    except NetworkError:
        # The URL is the base without the token (the token is appended per request).
        raise CliError("cli.run.unreachable", url=context.settings.bot_api_url) from None
    except WebhookUnavailable as error:
        raise CliError("cli.run.refused", detail=str(error)) from None
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace, context: Context) -> int:
    """Run the scheduled jobs (reminders, interim results, outbox)."""
    from jobs.runner import run_jobs

    with _database(context):
        pass
    run_jobs(context.settings)
    return EXIT_OK


def cmd_remind(args: argparse.Namespace, context: Context) -> int:
    """Queue reminders now (--force: also in quiet hours)."""
    from jobs.runner import remind_now

    with _database(context):
        pass
    count = remind_now(context.settings, force=args.force)
    context.say("cli.remind.done", count=count)
    return EXIT_OK


def cmd_export(args: argparse.Namespace, context: Context) -> int:
    """Write the round's workbook (summary sheets, tallies, grades)."""
    from bot.workbook import write_workbook

    out = Path(args.out)
    if out.suffix.lower() != ".xlsx":
        raise CliError("cli.export.bad_out", path=args.out)
    with _database(context) as engine, transaction(engine) as session:
        round_id = args.round
        if round_id is None:
            open_now = current_round(session) or next(iter(list_rounds(session)), None)
            if open_now is None:
                raise CliError("cli.export.no_round")
            round_id = open_now.id
        else:
            get_round(session, round_id)
        written = write_workbook(
            session,
            round_id=round_id,
            path=out,
            locale=context.locale,
            zone=context.settings.zone,
        )
    context.say("cli.export.written", path=str(written))
    return EXIT_OK


# --- demo ------------------------------------------------------------------------------------


def _demo_url(database: str | None) -> tuple[str, Path | None]:
    """The demo database URL and, for SQLite, its file (replaced if it exists)."""
    if database is None:
        path = Path.cwd() / "ceping-demo.db"
        return f"sqlite:///{path}", path
    if database.startswith("sqlite:///"):
        return database, Path(database.removeprefix("sqlite:///"))
    if database.startswith(("sqlite:", "postgresql")):
        return database, None
    # A bare file name is the friendliest way to say where the demo goes.
    path = Path(database)
    return f"sqlite:///{path.resolve()}", path


def _remove_sqlite_file(path: Path) -> None:
    """Delete a previous demo database and its WAL side files."""
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        candidate.unlink(missing_ok=True)


def cmd_demo(args: argparse.Namespace, context: Context) -> int:
    """Build a demo township with answers in a fresh database and print its tally."""
    from storage.demo import DemoError, build_demo

    url, path = _demo_url(args.database)
    if path is not None:
        _remove_sqlite_file(path)
    context.say("cli.demo.building", target=str(path) if path else url.split("@")[-1])
    with _engine(url) as engine:
        upgrade(engine)
        try:
            demo = build_demo(engine, now=utcnow())
        except DemoError as error:
            raise CliError(f"cli.demo.{error.code}") from None
        with transaction(engine) as session:
            print_round_table(session, demo.round_id, context)
    if path is not None:
        context.say("cli.demo.done", path=str(path))
    return EXIT_OK


def _width(text: str) -> int:
    """Display width in a terminal: wide (CJK) characters take two cells."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cell(text: str, width: int, right: bool = False) -> str:
    """Pad text to a display width."""
    padding = " " * max(0, width - _width(text))
    return padding + text if right else text + padding


def _percent(value: Any) -> str:
    """A share as a percentage with one decimal, or a dash."""
    return "—" if value is None else f"{value * 100:.1f}%"


def _score(value: Any) -> str:
    """A score with two decimals, or a dash."""
    return "—" if value is None else f"{value:.2f}"


def _participation(coverage: dict[Any, Any], audience: str, context: Context) -> str:
    """respondents/required with a mark when behind the target."""
    from surveys.categories import Audience

    item = coverage.get(Audience(audience))
    if item is None:
        return "—"
    mark = "" if item.status == "met" else "*"
    return f"{item.respondents}/{item.required}{mark}"


def print_round_table(session: Session, round_id: int, context: Context) -> None:
    """Per-branch participation, 三率, scores and proposed grades with quotas applied."""
    from storage.tallies import round_tally

    tally = round_tally(session, round_id=round_id)
    round_ = session.get(Round, round_id)
    assert round_ is not None
    context.say("cli.demo.title", round=round_.name, branches=len(tally.branches))
    columns = [
        (context.text("cli.table.branch"), 30, False),
        (context.text("cli.table.members"), 9, True),
        (context.text("cli.table.masses"), 9, True),
        (context.text("cli.table.satisfaction_rate"), 8, True),
        (context.text("cli.table.awareness_rate"), 8, True),
        (context.text("cli.table.participation_rate"), 8, True),
        (context.text("cli.table.self_evaluation"), 7, True),
        (context.text("cli.table.satisfaction"), 7, True),
        (context.text("cli.table.inspection"), 7, True),
        (context.text("cli.table.superior"), 7, True),
        (context.text("cli.table.score"), 7, True),
        (context.text("cli.table.grade"), 6, False),
        (context.text("cli.table.note"), 0, False),
    ]
    print("  ".join(_cell(title, width, right) for title, width, right in columns).rstrip())
    for branch in tally.branches:
        rates = branch.rates
        grade = branch.grade
        notes = []
        if branch.small_group:
            notes.append(context.text("cli.table.small_group", threshold=tally.threshold))
        if branch.vetoed and (branch.proposal is None or branch.proposal.reason != "veto"):
            notes.append(context.text("cli.table.veto"))
        if branch.proposal is not None and branch.proposal.reason != "threshold":
            notes.append(context.text(f"proposal_reason.{branch.proposal.reason}"))
        if branch.proposal is not None and branch.proposal.tie_at_edge:
            notes.append(context.text("proposal.tie_at_edge"))
        values = [
            branch.name,
            _participation(branch.coverage, "members", context),
            _participation(branch.coverage, "masses", context),
            _percent(rates.satisfaction if rates else None),
            _percent(rates.awareness if rates else None),
            _percent(rates.participation if rates else None),
            _score(branch.self_evaluation),
            _score(branch.satisfaction_score),
            _score(branch.inspection),
            _score(branch.superior),
            _score(branch.grading_score),
            context.text(f"grade.{grade}") if grade else "—",
            "；".join(notes),
        ]
        print(
            "  ".join(
                _cell(value, width, right)
                for value, (_, width, right) in zip(values, columns, strict=True)
            ).rstrip()
        )
    context.say(
        "cli.table.quota", graded=tally.graded, max_good=tally.max_good, min_poor=tally.min_poor
    )
    context.say("cli.table.legend")


# --- Parser ----------------------------------------------------------------------------------


def build_parser(locale: str) -> argparse.ArgumentParser:
    """The ``ceping`` command line, with help texts from the catalog."""

    def h(key: str) -> str:
        return t(f"cli.help.{key}", locale)

    parser = _Parser(prog="ceping", description=h("ceping"))
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    commands.add_parser("init", help=h("init")).set_defaults(handler=cmd_init)

    importing = commands.add_parser("import", help=h("import"))
    importing.add_argument("files", nargs="+", metavar="FILE", help=h("import_files"))
    importing.add_argument("--dry-run", action="store_true", help=h("dry_run"))
    importing.set_defaults(handler=cmd_import)

    rounds = commands.add_parser("round", help=h("round")).add_subparsers(
        dest="round_command", required=True, parser_class=_Parser
    )
    creating = rounds.add_parser("create", help=h("round_create"))
    creating.add_argument("name", metavar="NAME")
    creating.add_argument(
        "--deadline",
        action="append",
        required=True,
        metavar="PHASE=YYYY-MM-DDTHH:MM",
        help=h("deadline"),
    )
    creating.add_argument(
        "--opens", action="append", metavar="PHASE=YYYY-MM-DDTHH:MM", help=h("opens")
    )
    creating.add_argument("--open", action="store_true", help=h("open_now"))
    creating.add_argument("--option", action="append", metavar="KEY=VALUE", help=h("option"))
    creating.set_defaults(handler=cmd_round_create)
    rounds.add_parser("list", help=h("round_list")).set_defaults(handler=cmd_round_list)
    for name, handler in (("open", cmd_round_open), ("close", cmd_round_close)):
        sub = rounds.add_parser(name, help=h(f"round_{name}"))
        sub.add_argument("id", type=int, metavar="ID")
        sub.set_defaults(handler=handler)

    inviting = commands.add_parser("invite", help=h("invite"))
    inviting.add_argument("--round", type=int, metavar="ID", help=h("round_id"))
    inviting.add_argument("--branch", metavar="NAME", help=h("branch"))
    inviting.add_argument("--role", metavar="ROLE", help=h("role"))
    inviting.add_argument("--branch-links", action="store_true", help=h("branch_links"))
    inviting.add_argument("--include-registered", action="store_true", help=h("include_registered"))
    inviting.add_argument("--out", required=True, metavar="FILE", help=h("invite_out"))
    inviting.set_defaults(handler=cmd_invite)

    surveys = commands.add_parser("surveys", help=h("surveys")).add_subparsers(
        dest="surveys_command", required=True, parser_class=_Parser
    )
    checking = surveys.add_parser("check", help=h("surveys_check"))
    checking.add_argument("file", metavar="FILE")
    checking.set_defaults(handler=cmd_surveys_check)
    showing = surveys.add_parser("show", help=h("surveys_show"))
    showing.add_argument("id", metavar="ID")
    showing.set_defaults(handler=cmd_surveys_show)

    unbinding = commands.add_parser("unbind", help=h("unbind"))
    unbinding.add_argument("phone", metavar="PHONE", help=h("unbind_phone"))
    unbinding.set_defaults(handler=cmd_unbind)

    running = commands.add_parser("run", help=h("run"))
    running.add_argument(
        "--webhook-url", "--webhook", dest="webhook_url", metavar="URL", help=h("webhook_url")
    )
    running.add_argument("--listen", metavar="ADDRESS", help=h("listen"))
    running.add_argument("--port", type=int, metavar="PORT", help=h("port"))
    running.set_defaults(handler=cmd_run)
    commands.add_parser("jobs", help=h("jobs")).set_defaults(handler=cmd_jobs)
    reminding = commands.add_parser("remind", help=h("remind"))
    reminding.add_argument("--force", action="store_true", help=h("force"))
    reminding.set_defaults(handler=cmd_remind)

    exporting = commands.add_parser("export", help=h("export"))
    exporting.add_argument("--round", type=int, metavar="ID", help=h("round_id"))
    exporting.add_argument("--out", required=True, metavar="FILE.xlsx", help=h("export_out"))
    exporting.set_defaults(handler=cmd_export)

    demo = commands.add_parser("demo", help=h("demo"))
    demo.add_argument("--database", metavar="URL", help=h("demo_database"))
    demo.set_defaults(handler=cmd_demo)
    return parser


# --- Entry point -----------------------------------------------------------------------------


def _fallback_locale() -> str:
    """The locale to complain in when the settings themselves are broken."""
    return "en" if os.environ.get("CEPING_LOCALE", "").startswith("en") else "zh_CN"


def _redact(text: str, settings: Settings | None) -> str:
    """The text with the bot token blanked out, first line only."""
    line = (text.strip().splitlines() or [""])[0]
    if settings is not None and settings.bot_token is not None:
        token = settings.bot_token.get_secret_value()
        if token:
            line = line.replace(token, "***")
    return line[:300]


def _fail(line: str, code: int) -> int:
    """Print one line to stderr and return the exit code."""
    print(line, file=sys.stderr)
    return code


def _dispatch(args: argparse.Namespace, context: Context) -> int:
    """Run the chosen command, turning every refusal into one catalog line."""
    locale = context.locale
    try:
        return int(args.handler(args, context))
    except CliError as error:
        return _fail(t(error.key, locale, **error.params), error.exit_code)
    except RoundError as error:
        return _fail(t(f"round.error.{error.code}", locale, **error.params), EXIT_FAILED)
    except RosterFileError as error:
        return _fail(t(f"roster.file.{error.code}", locale, **error.params), EXIT_FAILED)
    except SettingsError as error:
        return _fail(t("cli.settings_error", locale, detail=str(error)), EXIT_USAGE)
    except SQLAlchemyError as error:
        detail = _redact(str(getattr(error, "orig", None) or error), context.settings)
        return _fail(t("cli.database_error", locale, detail=detail), EXIT_FAILED)
    except KeyboardInterrupt:
        return _fail(t("cli.interrupted", locale), 130)
    except BrokenPipeError:  # the output was piped into `head`: nothing left to say
        return EXIT_FAILED
    except Exception as error:  # never a traceback for the organizer; the kind helps a bug report
        detail = _redact(str(error), context.settings)
        return _fail(
            t("cli.unexpected", locale, kind=type(error).__name__, detail=detail), EXIT_FAILED
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ceping`` console script."""
    try:
        settings = load_settings()
    except SettingsError as error:
        return _fail(t("cli.settings_error", _fallback_locale(), detail=str(error)), EXIT_USAGE)
    context = Context(settings=settings, locale=settings.locale)
    parser = build_parser(context.locale)
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except _UsageError as error:
        return _fail(t("cli.usage_error", context.locale, detail=str(error)), EXIT_USAGE)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    return _dispatch(args, context)


if __name__ == "__main__":
    sys.exit(main())
