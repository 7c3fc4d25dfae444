"""Who may see which branch's reports in a round, read from the database on every request.

Organizer: every graded branch under the organization they organize (under the 党委: all its
branches; under a branch: that branch). Secretary: their own branch. Inspector: the branches
they are assigned to inspect in the round. 工作组组长 and county reviewers: the branches under the
organization the roster lists them in. Members and masses see no reports at all.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlmodel import Session, select

from storage.models import Assignment, PersonRole, TelegramAccount
from storage.rounds import branches_in_scope
from surveys.categories import Audience, Role


@dataclass(frozen=True)
class Scope:
    """The branches one person may see in one round, by the role that lets them."""

    person_id: int | None
    round_id: int
    organizer_orgs: frozenset[int] = frozenset()
    secretary_orgs: frozenset[int] = frozenset()
    inspector_orgs: frozenset[int] = frozenset()
    leader_orgs: frozenset[int] = frozenset()  # 工作组组长 (docs/rules.md §10)
    reviewer_orgs: frozenset[int] = frozenset()  # 县委组织部 (docs/rules.md §9)

    @property
    def visible_orgs(self) -> frozenset[int]:
        """Every branch this person may see."""
        return (
            self.organizer_orgs
            | self.secretary_orgs
            | self.inspector_orgs
            | self.leader_orgs
            | self.reviewer_orgs
        )

    @property
    def empty(self) -> bool:
        """Whether this person may see no branch at all."""
        return not self.visible_orgs

    @property
    def is_organizer(self) -> bool:
        """Whether the person organizes at least one branch."""
        return bool(self.organizer_orgs)

    def can_see(self, org_id: int) -> bool:
        """Whether the person may see this branch's reports."""
        return org_id in self.visible_orgs

    def organizes(self, org_id: int) -> bool:
        """Whether the person may decide about this branch (grades, vetoes, members only)."""
        return org_id in self.organizer_orgs

    def leads_work_group_of(self, org_id: int) -> bool:
        """Whether the person may sign as 工作组组长: only the roster's 工作组组长 of the branch."""
        return org_id in self.leader_orgs

    def reviews(self, org_id: int) -> bool:
        """Whether the person reviews this branch's grade for the county (审核)."""
        return org_id in self.reviewer_orgs

    def is_secretary_of(self, org_id: int) -> bool:
        """Whether the person is the branch's secretary."""
        return org_id in self.secretary_orgs

    def keeps_ledger_of(self, org_id: int) -> bool:
        """Whether the person may edit the branch's rectification ledger."""
        return org_id in self.secretary_orgs or org_id in self.organizer_orgs


def _inspected(session: Session, person_id: int, round_id: int) -> frozenset[int]:
    rows = session.exec(
        select(Assignment.org_id).where(
            Assignment.round_id == round_id,
            Assignment.person_id == person_id,
            Assignment.audience == Audience.INSPECTORS.value,
        )
    ).all()
    return frozenset(int(org_id) for org_id in rows)


def scope_for(session: Session, *, person_id: int | None, round_id: int) -> Scope:
    """What this person may see in this round (nobody unregistered sees anything)."""
    if person_id is None:
        return Scope(person_id=None, round_id=round_id)
    return Scope(
        person_id=person_id,
        round_id=round_id,
        organizer_orgs=frozenset(
            branches_in_scope(session, person_id=person_id, role=Role.ORGANIZER)
        ),
        secretary_orgs=frozenset(
            branches_in_scope(session, person_id=person_id, role=Role.SECRETARY)
        ),
        inspector_orgs=_inspected(session, person_id, round_id),
        leader_orgs=frozenset(
            branches_in_scope(session, person_id=person_id, role=Role.WORK_GROUP_LEADER)
        ),
        reviewer_orgs=frozenset(
            branches_in_scope(session, person_id=person_id, role=Role.COUNTY_REVIEWER)
        ),
    )


@dataclass(frozen=True)
class Recipient:
    """A person the bot can write to: their chat and reply language."""

    person_id: int
    chat_id: int
    locale: str


def holders_of(session: Session, *, role: Role, org_ids: Collection[int]) -> list[Recipient]:
    """Everyone who uses the bot and holds ``role`` over at least one of these branches."""
    rows = session.exec(
        select(PersonRole.person_id, TelegramAccount.chat_id, TelegramAccount.language)
        .join(TelegramAccount, TelegramAccount.person_id == PersonRole.person_id)  # type: ignore[arg-type]
        .where(PersonRole.role == role.value)
    ).all()
    wanted = set(org_ids)
    return [
        Recipient(person_id, chat_id, language or "zh_CN")
        for person_id, chat_id, language in sorted(set(rows))
        if wanted & set(branches_in_scope(session, person_id=person_id, role=role))
    ]
