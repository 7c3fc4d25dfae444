"""participation counts per branch and audience, kept by triggers (issue 12)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

``assignment_count`` holds, per round, branch and audience, how many assignments there
are and how many are submitted: what a tally grouped from every assignment of the round
before. Triggers on ``assignment`` keep it (after insert, delete, and an update of its
round, branch, audience or status), on SQLite and on PostgreSQL alike, so no write site —
the bot, the jobs, the command line, a fixture or a hand-written repair — can forget it.
A row goes with the last assignment it counts. The table is backfilled from the
assignments already there.

The schema is only ever created by these migrations (``storage.db.upgrade``; the tests
migrate a template too), so the triggers exist wherever the table does. A later migration
that rebuilds ``assignment`` on SQLite (``batch_alter_table`` copies and drops the table)
drops its triggers with it and must create them again (``create_triggers`` below).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SUBMITTED = "CASE WHEN {row}.status = 'submitted' THEN 1 ELSE 0 END"
_KEY = "round_id = {row}.round_id AND org_id = {row}.org_id AND audience = {row}.audience"


def _add(row: str) -> str:
    """Count the row in its (round, branch, audience): one more, and submitted or not."""
    return (
        "INSERT INTO assignment_count (round_id, org_id, audience, assigned, submitted)"
        f" VALUES ({row}.round_id, {row}.org_id, {row}.audience, 1, {_SUBMITTED.format(row=row)})"
        " ON CONFLICT (round_id, org_id, audience) DO UPDATE"
        " SET assigned = assignment_count.assigned + 1,"
        " submitted = assignment_count.submitted + excluded.submitted;"
    )


def _remove(row: str) -> str:
    """Count the row out of its (round, branch, audience); the last one takes the row along.

    Never an insert: when a round is deleted its counts may have gone first (cascade).
    The update comes first and the delete looks at what it left: two transactions taking
    out the last two of a branch at once queue on the row lock, and the second one sees
    the first one's count (a delete deciding on its own snapshot would miss it).
    """
    key = _KEY.format(row=row)
    return (
        "UPDATE assignment_count SET assigned = assigned - 1,"
        f" submitted = submitted - {_SUBMITTED.format(row=row)} WHERE {key};"
        f" DELETE FROM assignment_count WHERE {key} AND assigned = 0;"
    )


_RESUBMITTED = (
    "UPDATE assignment_count SET submitted = submitted"
    f" + {_SUBMITTED.format(row='NEW')} - {_SUBMITTED.format(row='OLD')}"
    f" WHERE {_KEY.format(row='NEW')};"
)
_SAME_KEY = (
    "NEW.round_id = OLD.round_id AND NEW.org_id = OLD.org_id AND NEW.audience = OLD.audience"
)
_SAME_SUBMITTED = "(NEW.status = 'submitted') = (OLD.status = 'submitted')"

_SQLITE_TRIGGERS = {
    "assignment_count_insert": f"AFTER INSERT ON assignment BEGIN {_add('NEW')} END",
    "assignment_count_delete": f"AFTER DELETE ON assignment BEGIN {_remove('OLD')} END",
    "assignment_count_status": (
        f"AFTER UPDATE OF status ON assignment WHEN {_SAME_KEY} AND NOT {_SAME_SUBMITTED}"
        f" BEGIN {_RESUBMITTED} END"
    ),
    "assignment_count_move": (
        "AFTER UPDATE OF round_id, org_id, audience ON assignment"
        f" WHEN NOT ({_SAME_KEY}) BEGIN {_remove('OLD')} {_add('NEW')} END"
    ),
}

_POSTGRES_FUNCTION = f"""
CREATE FUNCTION assignment_count_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND {_SAME_KEY} THEN
        {_RESUBMITTED}
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_remove("OLD")}
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        {_add("NEW")}
    END IF;
    RETURN NULL;
END
$$"""
_POSTGRES_TRIGGERS = {
    "assignment_count_insert": "AFTER INSERT ON assignment FOR EACH ROW",
    "assignment_count_delete": "AFTER DELETE ON assignment FOR EACH ROW",
    "assignment_count_update": (
        "AFTER UPDATE OF round_id, org_id, audience, status ON assignment FOR EACH ROW"
        f" WHEN (NOT ({_SAME_KEY} AND {_SAME_SUBMITTED}))"
    ),
}


def create_triggers(bind: sa.Connection) -> None:
    """The triggers that keep ``assignment_count`` (and PostgreSQL's function they call)."""
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql(_POSTGRES_FUNCTION)
        for name, when in _POSTGRES_TRIGGERS.items():
            bind.exec_driver_sql(
                f"CREATE TRIGGER {name} {when} EXECUTE FUNCTION assignment_count_keep()"
            )
        return
    for name, body in _SQLITE_TRIGGERS.items():
        bind.exec_driver_sql(f"CREATE TRIGGER {name} {body}")


def upgrade() -> None:
    """The table, its triggers, then the counts of the assignments already there."""
    op.create_table(
        "assignment_count",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("audience", sa.String(length=20), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("submitted", sa.Integer(), nullable=False),
        sa.CheckConstraint("assigned >= 0", name=op.f("ck_assignment_count_assigned")),
        sa.CheckConstraint(
            "submitted >= 0 AND submitted <= assigned",
            name=op.f("ck_assignment_count_submitted"),
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_assignment_count_org_id_organization")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["round.id"],
            name=op.f("fk_assignment_count_round_id_round"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("round_id", "org_id", "audience", name=op.f("pk_assignment_count")),
    )
    bind = op.get_bind()
    create_triggers(bind)
    bind.execute(
        sa.text(
            "INSERT INTO assignment_count (round_id, org_id, audience, assigned, submitted)"
            " SELECT round_id, org_id, audience, COUNT(*),"
            " SUM(CASE WHEN status = 'submitted' THEN 1 ELSE 0 END)"
            " FROM assignment GROUP BY round_id, org_id, audience"
        )
    )


def downgrade() -> None:
    bind = op.get_bind()
    names = _POSTGRES_TRIGGERS if bind.dialect.name == "postgresql" else _SQLITE_TRIGGERS
    for name in names:
        on = " ON assignment" if bind.dialect.name == "postgresql" else ""
        bind.exec_driver_sql(f"DROP TRIGGER {name}{on}")
    if bind.dialect.name == "postgresql":
        bind.exec_driver_sql("DROP FUNCTION assignment_count_keep()")
    op.drop_table("assignment_count")
