"""Organization categories, people's roles, survey audiences and round phases."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Category(StrEnum):
    """Kind of party organization; standards and targets differ per category."""

    COMMITTEE = "committee"  # 镇党委/园区党工委/街道党工委: the grading body, never graded
    VILLAGE = "village"  # 村
    COMMUNITY = "community"  # 社区
    INSTITUTION = "institution"  # 机关事业单位 (schools and hospitals count here)
    ENTERPRISE = "enterprise"  # 非公企业
    SOCIAL = "social"  # 社会组织


class Role(StrEnum):
    """What a person does in a round; one person may hold several roles."""

    MEMBER = "member"  # 党员
    MASS = "mass"  # 群众代表
    COMMITTEE = "committee"  # 班子成员
    SECRETARY = "secretary"  # 书记
    INSPECTOR = "inspector"  # 工作组
    ORGANIZER = "organizer"  # 组织员
    # The two signers/reviewers the seeds name (docs/rules.md §9, §10): only the 工作组组长
    # signs the announced tally as leader; the county reviewer approves or returns grades.
    WORK_GROUP_LEADER = "work_group_leader"  # 工作组组长 (seed 000 一.5)
    COUNTY_REVIEWER = "county_reviewer"  # 县委组织部审核 (seed 001 六)


class Audience(StrEnum):
    """Group of respondents whose participation is counted against a target."""

    MEMBERS = "members"
    MASSES = "masses"
    COMMITTEE = "committee"  # self-evaluation
    INSPECTORS = "inspectors"
    ORGANIZERS = "organizers"  # superior scoring


BRANCH_AUDIENCES: tuple[Audience, ...] = (Audience.MEMBERS, Audience.MASSES, Audience.COMMITTEE)
"""A branch's own people; inspectors and organizers are the township's staff (issue 14)."""


class Phase(StrEnum):
    """Step of a grading round."""

    SELF_EVALUATION = "self_evaluation"
    SATISFACTION = "satisfaction"
    INSPECTION = "inspection"
    SUPERIOR_SCORING = "superior_scoring"


# Names as they appear in rosters; traditional forms included because some regions use them.
_CATEGORY_NAMES: dict[str, Category] = {
    "党委": Category.COMMITTEE,
    "黨委": Category.COMMITTEE,
    "党工委": Category.COMMITTEE,
    "黨工委": Category.COMMITTEE,
    "镇党委": Category.COMMITTEE,
    "鎮黨委": Category.COMMITTEE,
    "园区党工委": Category.COMMITTEE,
    "街道党工委": Category.COMMITTEE,
    "村": Category.VILLAGE,
    "社区": Category.COMMUNITY,
    "社區": Category.COMMUNITY,
    "机关事业单位": Category.INSTITUTION,
    "機關事業單位": Category.INSTITUTION,
    "机关": Category.INSTITUTION,
    "機關": Category.INSTITUTION,
    "事业单位": Category.INSTITUTION,
    "事業單位": Category.INSTITUTION,
    "学校": Category.INSTITUTION,
    "學校": Category.INSTITUTION,
    "医院": Category.INSTITUTION,
    "醫院": Category.INSTITUTION,
    "非公企业": Category.ENTERPRISE,
    "非公企業": Category.ENTERPRISE,
    "企业": Category.ENTERPRISE,
    "企業": Category.ENTERPRISE,
    "社会组织": Category.SOCIAL,
    "社會組織": Category.SOCIAL,
}

_ROLE_NAMES: dict[str, Role] = {
    "党员": Role.MEMBER,
    "黨員": Role.MEMBER,
    "群众代表": Role.MASS,
    "群眾代表": Role.MASS,
    "群众": Role.MASS,
    "群眾": Role.MASS,
    "村民代表": Role.MASS,
    "居民代表": Role.MASS,
    "职工代表": Role.MASS,
    "職工代表": Role.MASS,
    "职工": Role.MASS,
    "職工": Role.MASS,
    "班子成员": Role.COMMITTEE,
    "班子成員": Role.COMMITTEE,
    "支委": Role.COMMITTEE,
    "委员": Role.COMMITTEE,
    "委員": Role.COMMITTEE,
    "书记": Role.SECRETARY,
    "書記": Role.SECRETARY,
    "支部书记": Role.SECRETARY,
    "支部書記": Role.SECRETARY,
    "工作组": Role.INSPECTOR,
    "工作組": Role.INSPECTOR,
    "观摩打分人员": Role.INSPECTOR,
    "觀摩打分人員": Role.INSPECTOR,
    "检查组": Role.INSPECTOR,
    "檢查組": Role.INSPECTOR,
    "工作组组长": Role.WORK_GROUP_LEADER,
    "工作組組長": Role.WORK_GROUP_LEADER,
    "组长": Role.WORK_GROUP_LEADER,
    "組長": Role.WORK_GROUP_LEADER,
    "县委组织部": Role.COUNTY_REVIEWER,
    "縣委組織部": Role.COUNTY_REVIEWER,
    "审核员": Role.COUNTY_REVIEWER,
    "審核員": Role.COUNTY_REVIEWER,
    "组织员": Role.ORGANIZER,
    "組織員": Role.ORGANIZER,
    "组织干事": Role.ORGANIZER,
    "組織幹事": Role.ORGANIZER,
}

_ROLE_SEPARATORS = re.compile(r"[、,，;；\s]+")


def _normalize(text: str) -> str:
    """Strip surrounding whitespace and fold case so English values match in any case."""
    return text.strip().casefold()


def parse_category(text: str) -> Category:
    """Read a category from a roster cell (Chinese name or English value)."""
    key = _normalize(text)
    if key in _CATEGORY_NAMES:
        return _CATEGORY_NAMES[key]
    try:
        return Category(key)
    except ValueError:
        raise ValueError(f"unknown category: {text!r}") from None


def parse_role(text: str) -> Role:
    """Read one role from a roster cell (Chinese name or English value)."""
    key = _normalize(text)
    if key in _ROLE_NAMES:
        return _ROLE_NAMES[key]
    try:
        return Role(key)
    except ValueError:
        raise ValueError(f"unknown role: {text!r}") from None


def parse_roles(text: str) -> list[Role]:
    """Read several roles separated by 、,，;； or spaces; duplicates dropped, order kept."""
    roles: list[Role] = []
    for part in _ROLE_SEPARATORS.split(text):
        if not part:
            continue
        role = parse_role(part)
        if role not in roles:
            roles.append(role)
    return roles


def graded(category: Category) -> bool:
    """Whether this category is graded (the committee grades others, not itself)."""
    return category is not Category.COMMITTEE


class RoundStatus(StrEnum):
    """Life of a round: drafted, opened for answers, closed."""

    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"


class AssignmentStatus(StrEnum):
    """How far one person got with one survey about one branch."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"


class InvitationKind(StrEnum):
    """A personal single-use link, or a branch link shared by its mass representatives."""

    PERSONAL = "personal"
    BRANCH = "branch"


class BoundVia(StrEnum):
    """How a Telegram account was tied to a person."""

    INVITATION = "invitation"
    CONTACT = "contact"  # shared phone number matched the roster
    BRANCH_LINK = "branch_link"


class SignRole(StrEnum):
    """Who signs a branch's grade off (签字确认)."""

    SECRETARY = "secretary"
    WORK_GROUP_LEADER = "work_group_leader"


# The inspection sheet (观摩打分表) each graded category is inspected with: villages and
# communities have their own, the "two new" organizations and institutions share one.
INSPECTION_SHEETS: Mapping[Category, str] = MappingProxyType(
    {
        Category.VILLAGE: "inspection_village",
        Category.COMMUNITY: "inspection_village",
        Category.INSTITUTION: "inspection_two_new",
        Category.ENTERPRISE: "inspection_two_new",
        Category.SOCIAL: "inspection_two_new",
    }
)


def inspection_sheet_for(category: Category) -> str:
    """Id of the inspection instrument a branch of this category is scored with."""
    try:
        return INSPECTION_SHEETS[category]
    except KeyError:
        raise ValueError(f"{category} is not graded, so it has no inspection sheet") from None
