"""Roster import: read the spreadsheet, compare with the database, apply in one transaction.

All or nothing: a file with any problem changes nothing. People are matched by phone and
organizations by name; rows missing from a later file are reported, never deleted, because
deleting a person or a branch would lose the answers attached to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from storage.models import Organization, Person, PersonRole
from surveys.audiences import REPRESENTATIVE_MASSES
from surveys.categories import Category, Role
from surveys.roster import (
    OrgRow,
    PersonRow,
    Roster,
    RosterProblem,
    Table,
    check_roster,
)

if TYPE_CHECKING:
    import pandas as pd


def pandas() -> ModuleType:
    """pandas, loaded when a roster file is read: the running bot never needs its ~45 MB."""
    import pandas as pd

    return pd


# Sheet names recognised in a workbook; otherwise the first two sheets are used.
_ORG_SHEET_NAMES = ("组织", "組織", "organizations", "organisations", "orgs")
_PEOPLE_SHEET_NAMES = ("人员", "人員", "people", "persons")
_CSV_ENCODINGS = ("utf-8-sig", "gb18030")


class RosterFileError(Exception):
    """The roster files cannot be read at all; ``code`` is a catalog key under ``roster.file.``."""

    def __init__(self, code: str, **params: object) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


@dataclass
class KindChanges:
    """What an import does to one kind of row (organizations or people)."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    not_in_file: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        """Rows created or updated."""
        return len(self.created) + len(self.updated)


@dataclass
class ImportReport:
    """The outcome of an import: problems (then nothing was written) or the changes made."""

    problems: list[RosterProblem] = field(default_factory=list)
    organizations: KindChanges = field(default_factory=KindChanges)
    people: KindChanges = field(default_factory=KindChanges)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """Whether the file was accepted."""
        return not self.problems

    @property
    def changes(self) -> int:
        """Organizations and people created or updated."""
        return self.organizations.changes + self.people.changes


# --- Reading files -------------------------------------------------------------------------


def _table(name: str, frame: pd.DataFrame) -> Table:
    """A pandas frame of strings as a Table (blank rows kept so row numbers stay right)."""
    headers = [str(column).strip() for column in frame.columns]
    rows = [[None if cell is None else str(cell) for cell in row] for row in frame.to_numpy()]
    return Table(name=name, headers=headers, rows=rows)


def _pick_sheets(names: Sequence[str]) -> tuple[str, str]:
    """The organizations and people sheets: by name if present, else the first two."""
    folded = {name.strip().casefold(): name for name in names}
    orgs = next((folded[n] for n in _ORG_SHEET_NAMES if n in folded), None)
    people = next((folded[n] for n in _PEOPLE_SHEET_NAMES if n in folded), None)
    if orgs and people:
        return orgs, people
    if len(names) < 2:
        raise RosterFileError("two_sheets")
    return names[0], names[1]


def read_workbook(path: Path) -> tuple[Table, Table]:
    """The organizations and people tables of an XLSX workbook."""
    pd = pandas()
    try:
        sheets = pd.read_excel(path, sheet_name=None, dtype=str, na_filter=False, engine="openpyxl")
    except FileNotFoundError:
        raise RosterFileError("not_found", path=str(path)) from None
    except Exception:  # openpyxl raises many kinds for a damaged or foreign file
        raise RosterFileError("unreadable", path=str(path)) from None
    orgs, people = _pick_sheets(list(sheets))
    return _table(orgs, sheets[orgs]), _table(people, sheets[people])


def read_csv(path: Path) -> Table:
    """A CSV in UTF-8 (with or without BOM) or GBK/GB18030, as Excel in China writes it."""
    if not path.exists():
        raise RosterFileError("not_found", path=str(path))
    pd = pandas()
    for encoding in _CSV_ENCODINGS:
        try:
            frame = pd.read_csv(
                path, dtype=str, na_filter=False, encoding=encoding, skip_blank_lines=False
            )
        except UnicodeDecodeError:
            continue
        except pd.errors.EmptyDataError:
            return Table(name=path.name, headers=[], rows=[])
        except (pd.errors.ParserError, OSError):
            raise RosterFileError("unreadable", path=str(path)) from None
        return _table(path.name, frame)
    raise RosterFileError("encoding", path=str(path))


def read_roster_files(paths: Sequence[Path]) -> tuple[Table, Table]:
    """One XLSX with two sheets, or two CSV files (organizations first, then people)."""
    suffixes = [path.suffix.lower() for path in paths]
    if len(paths) == 1 and suffixes[0] in (".xlsx", ".xlsm"):
        return read_workbook(paths[0])
    if len(paths) == 2 and all(suffix == ".csv" for suffix in suffixes):
        return read_csv(paths[0]), read_csv(paths[1])
    raise RosterFileError("which_files")


# --- Comparing and applying ----------------------------------------------------------------


def _org_fields(row: OrgRow) -> dict[str, object]:
    """The columns of an Organization a roster row sets (the parent is handled apart)."""
    return {
        "category": row.category.value,
        "members": row.members,
        "representatives": row.representatives,
        "staff": row.staff,
        "has_workers_congress": row.has_workers_congress,
    }


def _apply_organizations(
    session: Session, rows: list[OrgRow], changes: KindChanges, now: datetime, write: bool
) -> dict[str, int | None]:
    """Create or update organizations; returns name → id (None for ones not yet written)."""
    existing = {org.name: org for org in session.exec(select(Organization)).all()}
    for row in rows:
        org = existing.get(row.name)
        wanted = _org_fields(row)
        if org is None:
            changes.created.append(row.name)
            if write:
                org = Organization(name=row.name, created_at=now, updated_at=now, **wanted)
                session.add(org)
                existing[row.name] = org
            continue
        if any(getattr(org, key) != value for key, value in wanted.items()):
            changes.updated.append(row.name)
            if write:
                for key, value in wanted.items():
                    setattr(org, key, value)
                org.updated_at = now
    in_file = {row.name for row in rows}
    changes.not_in_file = sorted(name for name in existing if name not in in_file)
    if write:
        session.flush()
    ids: dict[str, int | None] = {name: org.id for name, org in existing.items()}
    _apply_parents(session, rows, existing, ids, changes, now, write)
    return ids


def _apply_parents(
    session: Session,
    rows: list[OrgRow],
    existing: dict[str, Organization],
    ids: dict[str, int | None],
    changes: KindChanges,
    now: datetime,
    write: bool,
) -> None:
    """Set parents once every organization has an id (a parent may come after its child)."""
    for row in rows:
        org = existing.get(row.name)
        parent_id = ids.get(row.parent) if row.parent else None
        if org is None or org.parent_id == parent_id:
            continue
        if row.name not in changes.created and row.name not in changes.updated:
            changes.updated.append(row.name)
        if write:
            org.parent_id = parent_id
            org.updated_at = now
    if write:
        session.flush()


def _roles_by_person(session: Session) -> dict[int, set[tuple[int, str]]]:
    """Every person's (org id, role) pairs."""
    roles: dict[int, set[tuple[int, str]]] = {}
    for person_id, org_id, role in session.exec(
        select(PersonRole.person_id, PersonRole.org_id, PersonRole.role)
    ).all():
        roles.setdefault(person_id, set()).add((org_id, role))
    return roles


def _wanted_roles(row: PersonRow, org_id: int | None) -> set[tuple[int | None, str]]:
    """The (org id, role) pairs a person row asks for."""
    return {(org_id, Role(role).value) for role in row.roles}


def _apply_people(
    session: Session,
    rows: list[PersonRow],
    org_ids: dict[str, int | None],
    changes: KindChanges,
    now: datetime,
    write: bool,
) -> None:
    """Create or update people and their roles, matched by phone."""
    existing = {
        person.phone: person
        for person in session.exec(select(Person).where(col(Person.anonymous).is_(False))).all()
        if person.phone
    }
    roles = _roles_by_person(session)
    new_people: list[tuple[Person, PersonRow]] = []
    for row in rows:
        org_id = org_ids.get(row.org)
        person = existing.get(row.phone)
        if person is None:
            changes.created.append(row.name)
            if write:
                new_person = Person(name=row.name, phone=row.phone, org_id=org_id, created_at=now)
                new_people.append((new_person, row))
            continue
        have = roles.get(person.id or 0, set())
        want = _wanted_roles(row, org_id)
        if person.name == row.name and person.org_id == org_id and have == want:
            changes.unchanged += 1
            continue
        changes.updated.append(row.name)
        if write:
            person.name, person.org_id = row.name, org_id  # type: ignore[assignment]
            _replace_roles(session, person.id, have, want)  # type: ignore[arg-type]
    in_file = {row.phone for row in rows}
    changes.not_in_file = sorted(p.name for phone, p in existing.items() if phone not in in_file)
    if write and new_people:
        session.add_all([person for person, _ in new_people])
        session.flush()
        session.add_all(
            PersonRole(person_id=person.id, org_id=org_id, role=role)  # type: ignore[arg-type]
            for person, row in new_people
            for org_id, role in _wanted_roles(row, org_ids.get(row.org))
        )
        session.flush()


def _replace_roles(
    session: Session,
    person_id: int,
    have: set[tuple[int, str]],
    want: set[tuple[int | None, str]],
) -> None:
    """Add the roles the file lists and remove those it no longer lists."""
    for org_id, role in have - want:
        stale = session.exec(
            select(PersonRole).where(
                PersonRole.person_id == person_id,
                PersonRole.org_id == org_id,
                PersonRole.role == role,
            )
        ).one()
        session.delete(stale)
    session.flush()
    for org_id, role in want - have:
        session.add(PersonRole(person_id=person_id, org_id=org_id, role=role))  # type: ignore[arg-type]


def apply_roster(
    session: Session, roster: Roster, *, now: datetime, dry_run: bool = False
) -> ImportReport:
    """Compare a checked roster with the database and (unless dry_run) apply the difference."""
    report = ImportReport(problems=list(roster.problems), dry_run=dry_run)
    if roster.problems:
        return report
    write = not dry_run
    org_ids = _apply_organizations(session, roster.organizations, report.organizations, now, write)
    report.organizations.unchanged = len(roster.organizations) - report.organizations.changes
    _apply_people(session, roster.people, org_ids, report.people, now, write)
    return report


def import_roster(
    session: Session, paths: Sequence[Path], *, now: datetime, dry_run: bool = False
) -> ImportReport:
    """Read, check and apply roster files; the caller's transaction makes it all or nothing."""
    organizations, people = read_roster_files(paths)
    return apply_roster(session, check_roster(organizations, people), now=now, dry_run=dry_run)


def masses_basis(session: Session, *, org_ids: Iterable[int]) -> dict[int, str]:
    """Per branch, who its masses count is (docs/rules.md §13): ``residents`` (村(居)民代表),
    ``workers`` (职工代表, with a 职代会) or ``staff`` (all staff, no 职代会)."""
    wanted = list(org_ids)
    if not wanted:
        return {}
    rows = session.exec(
        select(Organization.id, Organization.category, Organization.has_workers_congress).where(
            col(Organization.id).in_(wanted)
        )
    ).all()
    found: dict[int, str] = {}
    for org_id, category, congress in rows:
        if Category(category) in REPRESENTATIVE_MASSES:
            found[org_id] = "residents"
        else:
            found[org_id] = "workers" if congress else "staff"
    return found
