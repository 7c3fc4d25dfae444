"""grading records: 工作组组长 and county reviewer roles, announced tally, county review, ledger checks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_ROLES = "role IN ('member', 'mass', 'committee', 'secretary', 'inspector', 'organizer')"
_NEW_ROLES = (
    "role IN ('member', 'mass', 'committee', 'secretary', 'inspector', 'organizer', "
    "'work_group_leader', 'county_reviewer')"
)


def _roles_check(condition: str) -> None:
    # SQLite cannot alter a CHECK in place: batch mode recreates the table.
    with op.batch_alter_table("person_role", schema=None, recreate="always") as batch_op:
        batch_op.drop_constraint(op.f("ck_person_role_role"), type_="check")
        batch_op.create_check_constraint(op.f("ck_person_role_role"), condition)


def upgrade() -> None:
    _roles_check(_NEW_ROLES)
    op.create_table(
        "announcement",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("announced_by", sa.Integer(), nullable=True),
        sa.Column("announced_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["announced_by"], ["person.id"], name=op.f("fk_announcement_announced_by_person")
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_announcement_org_id_organization")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["round.id"],
            name=op.f("fk_announcement_round_id_round"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("round_id", "org_id", name=op.f("pk_announcement")),
    )
    op.create_table(
        "review_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("after", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("grade", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('report', 'approve', 'return', 'redecide', 'finalize')",
            name=op.f("ck_review_event_action"),
        ),
        sa.CheckConstraint(
            "after IN ('decided', 'reported', 'approved', 'returned', 'final')",
            name=op.f("ck_review_event_after"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_review_event_org_id_organization")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_review_event_person_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["round.id"],
            name=op.f("fk_review_event_round_id_round"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_event")),
    )
    with op.batch_alter_table("review_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_event_org_id"), ["org_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_event_round_id"), ["round_id"], unique=False)
    op.create_table(
        "ledger_check",
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("checked_by", sa.Integer(), nullable=False),
        sa.Column("checked_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["checked_by"], ["person.id"], name=op.f("fk_ledger_check_checked_by_person")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["rectification_item.id"],
            name=op.f("fk_ledger_check_item_id_rectification_item"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_ledger_check")),
    )


def downgrade() -> None:
    op.drop_table("ledger_check")
    with op.batch_alter_table("review_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_event_round_id"))
        batch_op.drop_index(batch_op.f("ix_review_event_org_id"))
    op.drop_table("review_event")
    op.drop_table("announcement")
    op.execute("DELETE FROM person_role WHERE role IN ('work_group_leader', 'county_reviewer')")
    _roles_check(_OLD_ROLES)
