"""Reading a roster table: header mapping, phone numbers, and row checks that report every problem.

Pure: the caller reads the spreadsheet (``storage.roster``) and hands over plain tables of
strings; this module says what they mean or lists everything wrong with them, one
``RosterProblem`` per cell, with the row number as Excel shows it (the header is row 1).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from surveys.categories import Category, Role, parse_category, parse_role
from surveys.text import forbidden_characters

# Canonical column keys and every header that means them (compared trimmed and case-folded).
ORG_HEADERS: Mapping[str, tuple[str, ...]] = {
    "name": ("名称", "名稱", "组织名称", "組織名稱", "name"),
    "category": ("类别", "類別", "category"),
    "members": ("党员人数", "黨員人數", "members"),
    "representatives": ("代表人数", "代表人數", "representatives"),
    "staff": ("职工人数", "職工人數", "staff"),
    "congress": ("职代会", "職代會", "congress"),
    "parent": ("上级", "上級", "parent"),
}
PEOPLE_HEADERS: Mapping[str, tuple[str, ...]] = {
    "name": ("姓名", "name"),
    "phone": ("手机", "手機", "手机号", "手機號", "电话", "電話", "phone"),
    "org": ("组织", "組織", "org", "organization"),
    "roles": ("角色", "roles", "role"),
}
ORG_REQUIRED = ("name", "category", "members", "representatives", "parent")
PEOPLE_REQUIRED = ("name", "phone", "org", "roles")

_YES = frozenset({"是", "有", "yes", "y", "true", "1"})
_NO = frozenset({"否", "无", "無", "no", "n", "false", "0", ""})
_PHONE_NOISE = re.compile(r"[\s\-–—()./]+")
_MAINLAND_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_ROLE_SEPARATORS = re.compile(r"[、,，;；\s]+")
MAX_ORG_NAME = 120
MAX_PERSON_NAME = 60


@dataclass(frozen=True)
class RosterProblem:
    """One thing wrong with the file: where it is and a catalog code saying why."""

    sheet: str
    row: int | None  # as Excel shows it; None for the sheet as a whole
    column: str | None  # canonical column key (see ORG_HEADERS / PEOPLE_HEADERS)
    value: str | None
    code: str  # catalog key under ``roster.problem.``
    kind: str = "organizations"  # which table: "organizations" or "people"


@dataclass(frozen=True)
class Table:
    """One sheet or CSV file as read: its display name, header cells and rows of strings."""

    name: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str | None]]


@dataclass(frozen=True)
class OrgRow:
    """A valid organization row."""

    name: str
    category: Category
    members: int
    representatives: int
    staff: int
    has_workers_congress: bool
    parent: str | None
    row: int


@dataclass(frozen=True)
class PersonRow:
    """A valid person row; roles in the order written, duplicates dropped."""

    name: str
    phone: str
    org: str
    roles: tuple[Role, ...]
    row: int


@dataclass
class Roster:
    """The organizations and people of a roster file, or the problems that keep it out."""

    organizations: list[OrgRow] = field(default_factory=list)
    people: list[PersonRow] = field(default_factory=list)
    problems: list[RosterProblem] = field(default_factory=list)


def normalize_phone(text: str | None) -> str | None:
    """The 11-digit mainland mobile in text (+86, 0086, spaces, dashes, full width); else None."""
    if text is None:
        return None
    cleaned = unicodedata.normalize("NFKC", text).strip()
    # Excel may hand a phone typed as a number back as "13812345678.0".
    if cleaned.endswith(".0"):
        cleaned = cleaned[:-2]
    cleaned = _PHONE_NOISE.sub("", cleaned)
    for prefix in ("+86", "0086"):
        if cleaned.startswith(prefix):
            cleaned = cleaned[len(prefix) :]
            break
    else:
        if len(cleaned) == 13 and cleaned.startswith("86"):
            cleaned = cleaned[2:]
    return cleaned if _MAINLAND_MOBILE.match(cleaned) else None


def _fold(text: str) -> str:
    """A header or keyword compared trimmed, NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def map_headers(headers: Sequence[str], known: Mapping[str, tuple[str, ...]]) -> dict[str, int]:
    """Column key → position for every header recognised; the first of duplicates wins."""
    aliases = {_fold(alias): key for key, names in known.items() for alias in names}
    positions: dict[str, int] = {}
    for position, header in enumerate(headers):
        key = aliases.get(_fold(str(header)))
        if key is not None and key not in positions:
            positions[key] = position
    return positions


def parse_count(text: str) -> int | None:
    """A non-negative whole number (blank is 0; "12.0" from Excel is 12); None if invalid."""
    cleaned = unicodedata.normalize("NFKC", text).strip()
    if not cleaned:
        return 0
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not number.is_finite() or number < 0 or number != number.to_integral_value():
        return None
    return int(number)


def parse_yes_no(text: str) -> bool | None:
    """是/否/有/无/yes/no/1/0/blank as a bool; None if unrecognised."""
    key = _fold(text)
    if key in _YES:
        return True
    if key in _NO:
        return False
    return None


def split_roles(text: str) -> tuple[list[Role], list[str]]:
    """Roles separated by 、,， (or ;； and spaces): the known ones, and the unknown words."""
    roles: list[Role] = []
    unknown: list[str] = []
    for part in _ROLE_SEPARATORS.split(text.strip()):
        if not part:
            continue
        try:
            role = parse_role(part)
        except ValueError:
            unknown.append(part)
            continue
        if role not in roles:
            roles.append(role)
    return roles, unknown


class _Sheet:
    """A table with its columns mapped, collecting problems as rows are read."""

    def __init__(
        self,
        kind: str,
        table: Table,
        known: Mapping[str, tuple[str, ...]],
        required: Sequence[str],
    ) -> None:
        self.kind = kind
        self.table = table
        self.columns = map_headers(table.headers, known)
        self.problems: list[RosterProblem] = []
        for key in required:
            if key not in self.columns:
                self.problems.append(
                    RosterProblem(table.name, 1, key, None, "missing_column", kind)
                )
        if not any(_filled(row) for row in table.rows):
            self.problems.append(RosterProblem(table.name, None, None, None, "empty_sheet", kind))

    @property
    def usable(self) -> bool:
        """Whether rows can be read at all (every required column present, some rows)."""
        return not self.problems

    def rows(self) -> list[tuple[int, dict[str, str]]]:
        """(Excel row number, column key → trimmed cell) for every row that is not blank."""
        result = []
        for index, row in enumerate(self.table.rows):
            if not _filled(row):
                continue
            cells = {key: _cell(row, position) for key, position in self.columns.items()}
            result.append((index + 2, cells))
        return result

    def problem(self, row: int, column: str, value: str | None, code: str) -> None:
        """Record a problem in one cell."""
        self.problems.append(RosterProblem(self.table.name, row, column, value, code, self.kind))


def _cell(row: Sequence[str | None], position: int) -> str:
    """A cell as trimmed text ('' for missing or blank)."""
    if position >= len(row) or row[position] is None:
        return ""
    value = str(row[position]).strip()
    return "" if value.casefold() == "nan" else value


def _filled(row: Sequence[str | None]) -> bool:
    """Whether a row has any non-blank cell."""
    return any(_cell(row, position) for position in range(len(row)))


def _required_text(sheet: _Sheet, row: int, cells: dict[str, str], key: str, limit: int) -> str:
    """A cell that must not be blank nor longer than the database allows."""
    value = cells.get(key, "")
    if not value:
        sheet.problem(row, key, value, "missing_value")
    elif len(value) > limit:
        sheet.problem(row, key, value, "too_long")
    return value


def _check_characters(sheet: _Sheet, row: int, cells: dict[str, str]) -> None:
    """No control or format character (Unicode Cc, Cf) in any cell (issue 10, item 5).

    ``张\u202e三`` shows as another name in every report; the problem's value names the
    characters (U+202E) so the report itself is not disguised by them.
    """
    for key, value in cells.items():
        found = forbidden_characters(value)
        if found:
            shown = "".join(f"<U+{ord(c):04X}>" if f"U+{ord(c):04X}" in found else c for c in value)
            sheet.problem(row, key, shown, "control_characters")


def _read_org(sheet: _Sheet, row: int, cells: dict[str, str]) -> OrgRow | None:
    """One organization row, or None after recording its problems."""
    before = len(sheet.problems)
    _check_characters(sheet, row, cells)
    name = _required_text(sheet, row, cells, "name", MAX_ORG_NAME)
    category: Category | None = None
    if not cells.get("category"):
        sheet.problem(row, "category", "", "missing_value")
    else:
        try:
            category = parse_category(cells["category"])
        except ValueError:
            sheet.problem(row, "category", cells["category"], "unknown_category")
    counts: dict[str, int] = {}
    for key in ("members", "representatives", "staff"):
        count = parse_count(cells.get(key, ""))
        if count is None:
            sheet.problem(row, key, cells.get(key), "bad_count")
        counts[key] = count or 0
    congress = parse_yes_no(cells.get("congress", ""))
    if congress is None:
        sheet.problem(row, "congress", cells.get("congress"), "bad_yes_no")
    if len(sheet.problems) > before or category is None:
        return None
    return OrgRow(
        name=name,
        category=category,
        has_workers_congress=bool(congress),
        parent=cells.get("parent") or None,
        row=row,
        **counts,
    )


def _read_person(
    sheet: _Sheet, row: int, cells: dict[str, str], org_names: set[str] | None
) -> PersonRow | None:
    """One person row, or None after recording its problems (org_names None: not checked)."""
    before = len(sheet.problems)
    _check_characters(sheet, row, cells)
    name = _required_text(sheet, row, cells, "name", MAX_PERSON_NAME)
    phone = normalize_phone(cells.get("phone"))
    if phone is None:
        sheet.problem(row, "phone", cells.get("phone"), "bad_phone")
    org = _required_text(sheet, row, cells, "org", MAX_ORG_NAME)
    if org and org_names is not None and org not in org_names:
        sheet.problem(row, "org", org, "unknown_org")
    roles, unknown = split_roles(cells.get("roles", ""))
    for word in unknown:
        sheet.problem(row, "roles", word, "unknown_role")
    if not roles and not unknown:
        sheet.problem(row, "roles", "", "missing_value")
    if len(sheet.problems) > before or phone is None:
        return None
    return PersonRow(name=name, phone=phone, org=org, roles=tuple(roles), row=row)


def _check_org_names(
    sheet: _Sheet, rows: list[tuple[int, dict[str, str]]], orgs: list[OrgRow]
) -> dict[str, OrgRow]:
    """Valid organizations by name; any name on two rows is a problem at the later row."""
    seen: set[str] = set()
    for row, cells in rows:
        name = cells.get("name", "")
        if name and name in seen:
            sheet.problem(row, "name", name, "duplicate_org")
        seen.add(name)
    by_name: dict[str, OrgRow] = {}
    for org in orgs:
        by_name.setdefault(org.name, org)
    return by_name


def _check_parents(sheet: _Sheet, by_name: Mapping[str, OrgRow], names: set[str]) -> None:
    """Every parent must be an organization of the file, and parents must not loop."""
    for org in by_name.values():
        if org.parent is not None and org.parent not in names:
            sheet.problem(org.row, "parent", org.parent, "unknown_parent")
    reported: set[str] = set()
    for org in by_name.values():
        seen: list[str] = []
        current: OrgRow | None = org
        while current is not None and current.parent in by_name:
            if current.name in seen:
                cycle = seen[seen.index(current.name) :]
                if not reported & set(cycle):
                    loop = " → ".join([*cycle, cycle[0]])
                    sheet.problem(by_name[cycle[0]].row, "parent", loop, "parent_cycle")
                reported |= set(cycle)
                break
            seen.append(current.name)
            current = by_name[current.parent]


def _check_duplicate_people(sheet: _Sheet, rows: list[tuple[int, dict[str, str]]]) -> None:
    """Each phone once: people are matched by phone, so a second row would be ambiguous."""
    phones: set[str] = set()
    for row, cells in rows:
        phone = normalize_phone(cells.get("phone"))
        if phone is None:
            continue
        if phone in phones:
            sheet.problem(row, "phone", phone, "duplicate_person")
        phones.add(phone)


def check_roster(organizations: Table, people: Table) -> Roster:
    """Read both tables; the roster is usable only if ``problems`` is empty."""
    org_sheet = _Sheet("organizations", organizations, ORG_HEADERS, ORG_REQUIRED)
    people_sheet = _Sheet("people", people, PEOPLE_HEADERS, PEOPLE_REQUIRED)
    orgs: list[OrgRow] = []
    org_rows: list[tuple[int, dict[str, str]]] = []
    # Names of every organization row, valid or not, so one bad cell does not cascade.
    names: set[str] | None = None
    if org_sheet.usable:
        org_rows = org_sheet.rows()
        names = {cells["name"] for _, cells in org_rows if cells.get("name")}
        orgs = [o for row, cells in org_rows if (o := _read_org(org_sheet, row, cells))]
    by_name = _check_org_names(org_sheet, org_rows, orgs)
    _check_parents(org_sheet, by_name, names or set())
    persons: list[PersonRow] = []
    if people_sheet.usable:
        people_rows = people_sheet.rows()
        persons = [
            p for row, cells in people_rows if (p := _read_person(people_sheet, row, cells, names))
        ]
        _check_duplicate_people(people_sheet, people_rows)
    problems = org_sheet.problems + people_sheet.problems
    if problems:
        return Roster(problems=problems)
    return Roster(organizations=list(by_name.values()), people=persons)
