"""hardening: invitation tokens stored as their SHA-256, never in plaintext (issue 10)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_invitation = sa.table("invitation", sa.column("token", sa.String(64)))


def _digest(token: str) -> str:
    # The same rule as storage.links.token_digest, copied so the migration never changes.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def upgrade() -> None:
    """Replace each stored token by its hash; links already handed out keep working."""
    bind = op.get_bind()
    tokens = [row[0] for row in bind.execute(sa.select(_invitation.c.token))]
    for token in tokens:
        bind.execute(
            _invitation.update().where(_invitation.c.token == token).values(token=_digest(token))
        )


def downgrade() -> None:
    """A hash cannot be turned back into its token: the old links stay hashed (and dead)."""
