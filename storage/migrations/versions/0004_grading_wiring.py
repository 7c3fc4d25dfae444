"""grading wiring: 补测 re-runs, participation waivers, decision exceptions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, storage.types.UTCDateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int) -> sa.Column:
    return sa.Column(name, sqlmodel.sql.sqltypes.AutoString(length=length), nullable=False)


def _fk(table: str, column: str, target: str, **kwargs: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), **kwargs
    )


def upgrade() -> None:
    op.create_table(
        "branch_rerun",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        _when("opens_at"),
        _when("deadline"),
        _text("reason", 500),
        sa.Column("ordered_by", sa.Integer(), nullable=True),
        _fk("branch_rerun", "round_id", "round", ondelete="CASCADE"),
        _fk("branch_rerun", "org_id", "organization"),
        _fk("branch_rerun", "ordered_by", "person"),
        sa.PrimaryKeyConstraint("round_id", "org_id", name=op.f("pk_branch_rerun")),
    )
    op.create_table(
        "participation_waiver",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        _text("reason", 500),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        _when("decided_at"),
        _fk("participation_waiver", "round_id", "round", ondelete="CASCADE"),
        _fk("participation_waiver", "org_id", "organization"),
        _fk("participation_waiver", "decided_by", "person"),
        sa.PrimaryKeyConstraint("round_id", "org_id", name=op.f("pk_participation_waiver")),
    )
    op.create_table(
        "decision_exception",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        _text("kind", 30),
        sa.Column("org_ids", sa.JSON(), nullable=False),
        sa.Column("grades", sa.JSON(), nullable=False),
        _text("reason", 500),
        sa.Column("requested_by", sa.Integer(), nullable=True),
        _when("requested_at"),
        sa.Column("confirmed_by", sa.Integer(), nullable=True),
        _when("confirmed_at", nullable=True),
        _fk("decision_exception", "round_id", "round", ondelete="CASCADE"),
        _fk("decision_exception", "requested_by", "person"),
        _fk("decision_exception", "confirmed_by", "person"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_exception")),
    )
    op.create_index(
        op.f("ix_decision_exception_round_id"), "decision_exception", ["round_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_decision_exception_round_id"), table_name="decision_exception")
    op.drop_table("decision_exception")
    op.drop_table("participation_waiver")
    op.drop_table("branch_rerun")
