"""Deep-link tokens at rest: only their SHA-256 digest is stored (issue 10, item 8).

A personal link is a password to someone's identity; a leaked database (a backup, a copy
handed to a clerk) must not hand out working links. The plaintext exists only when a link
is issued, for the invitation sheet; every lookup hashes the token the user brings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from storage.models import Invitation


def token_digest(token: str) -> str:
    """The stored form of a token: its SHA-256 as 64 hex digits (the key column's width)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class IssuedLink:
    """A link just issued: the plaintext token (shown once) and its stored row.

    Reads of other attributes (``uses``, ``max_uses``, ``kind``…) go to the row.
    """

    token: str
    invitation: Invitation

    def __getattr__(self, name: str) -> Any:
        return getattr(self.invitation, name)
