"""the sealed satisfaction ballot box (issue 8)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

Drafts keep their JSON column: sealed values are JSON strings in it (storage.sealing), and
plain drafts written before this revision still read until their next save.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "satisfaction_box",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("ballots", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organization.id"],
            name=op.f("fk_satisfaction_box_org_id_organization"),
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["round.id"],
            name=op.f("fk_satisfaction_box_round_id_round"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("round_id", "org_id", name=op.f("pk_satisfaction_box")),
    )


def downgrade() -> None:
    op.drop_table("satisfaction_box")
