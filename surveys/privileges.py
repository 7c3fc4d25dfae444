"""Which roles a forwarded personal link must not be enough to take (issue 10, item 2).

A personal invitation link can be forwarded, or photographed off a printed sheet. For a
member that risks one anonymous ballot; for someone who grades branches, reads every
tally or signs for a branch it hands over the whole round. So for these roles the link
only starts the binding, and the person's own Telegram contact must match the roster phone.
Roles added later (a county reviewer, a leader) join this set.
"""

from __future__ import annotations

from collections.abc import Iterable

from surveys.categories import Role

PRIVILEGED_ROLES: frozenset[str] = frozenset(
    {Role.ORGANIZER.value, Role.INSPECTOR.value, Role.SECRETARY.value}
)
"""组织员, 工作组 and 书记: roles whose binding needs the roster phone as well as the link."""


def needs_phone_match(roles: Iterable[str]) -> bool:
    """Whether a person holding these roles binds only with a contact matching the roster."""
    return any(role in PRIVILEGED_ROLES for role in roles)


def phones_match(roster_phone: str | None, shared_phone: str | None) -> bool:
    """Whether the normalised shared number is the roster's (a missing one never matches)."""
    return bool(roster_phone) and roster_phone == shared_phone
