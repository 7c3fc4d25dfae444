"""Who answers which survey, and who counts as "the masses" of a branch (docs/rules.md §6)."""

from __future__ import annotations

from collections.abc import Collection

from surveys.categories import Audience, Category, Role

# Villages and communities have elected representatives (村民/居民代表); elsewhere the
# masses are the workers' congress representatives (职工代表), or all staff without one.
REPRESENTATIVE_MASSES = frozenset({Category.VILLAGE, Category.COMMUNITY})


def masses_are_representatives(category: Category, *, has_workers_congress: bool) -> bool:
    """Whether the branch's masses are its representatives (else all of its staff)."""
    return category in REPRESENTATIVE_MASSES or has_workers_congress


def masses_count(
    category: Category, *, representatives: int, staff: int, has_workers_congress: bool
) -> int:
    """How many people make up the branch's masses: its representatives, or all staff."""
    if masses_are_representatives(category, has_workers_congress=has_workers_congress):
        return representatives
    return staff


def satisfaction_audience(roles: Collection[Role]) -> Audience | None:
    """The audience someone answers the satisfaction survey in, from their roles in a branch.

    Someone both member and mass representative of a branch answers once, as member.
    """
    if Role.MEMBER in roles:
        return Audience.MEMBERS
    if Role.MASS in roles:
        return Audience.MASSES
    return None
