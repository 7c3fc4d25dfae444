"""per-branch summaries a tally reads in one row (issue 12)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

``satisfaction_ballots`` gains the sums the three rates and the score need (kept by the
fold from then on); ``response_summary`` sums the scored named responses per branch and
instrument; ``assignment`` gets an index for participation per branch and audience. The
summaries are backfilled from the rows already there, so an upgraded database tallies
exactly as before.
"""

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

from surveys.instruments import get_instrument

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = (
    "satisfied",
    "satisfaction_answers",
    "aware",
    "awareness_answers",
    "participating",
    "participation_answers",
    "valued",
)
_RATES = {
    "satisfaction": ("satisfied", "satisfaction_answers"),
    "awareness": ("aware", "awareness_answers"),
    "participation": ("participating", "participation_answers"),
}

_tally = sa.table(
    "satisfaction_tally",
    *(sa.column(n) for n in ("round_id", "org_id", "item_id", "option_id", "count")),
)
_ballots = sa.table(
    "satisfaction_ballots",
    sa.column("round_id"),
    sa.column("org_id"),
    *(sa.column(n, sa.Integer()) for n in _COUNTS),
    sa.column("weighted", sa.Numeric(precision=14, scale=2)),
)
_pins = sa.table(
    "round_instrument", *(sa.column(n) for n in ("round_id", "instrument_id", "version"))
)


def upgrade() -> None:
    """Add the columns and the table, then fill them from the counters and the responses."""
    for name in _COUNTS:
        op.add_column(
            "satisfaction_ballots",
            sa.Column(name, sa.Integer(), nullable=False, server_default="0"),
        )
    op.add_column(
        "satisfaction_ballots",
        sa.Column(
            "weighted", sa.Numeric(precision=14, scale=2), nullable=False, server_default="0"
        ),
    )
    op.create_table(
        "response_summary",
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("instrument_id", sa.String(length=40), nullable=False),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("responses", sa.Integer(), nullable=False),
        sa.CheckConstraint("responses >= 0", name=op.f("ck_response_summary_responses")),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organization.id"], name=op.f("fk_response_summary_org_id_organization")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"],
            ["round.id"],
            name=op.f("fk_response_summary_round_id_round"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "round_id", "org_id", "instrument_id", name=op.f("pk_response_summary")
        ),
    )
    op.create_index(
        "ix_assignment_round_org",
        "assignment",
        ["round_id", "org_id", "audience", "status"],
    )
    bind = op.get_bind()
    _backfill_satisfaction(bind)
    bind.execute(
        sa.text(
            "INSERT INTO response_summary (round_id, org_id, instrument_id, total, responses)"
            " SELECT round_id, org_id, instrument_id, SUM(total), COUNT(*) FROM response"
            " WHERE total IS NOT NULL GROUP BY round_id, org_id, instrument_id"
        )
    )


def _sums(instrument: Any, counts: dict[tuple[str, str], int]) -> dict[str, Any]:
    # The same rule as storage.summary.satisfaction_sums_of, copied so this never changes.
    sums: dict[str, Any] = dict.fromkeys(_COUNTS, 0)
    sums["weighted"] = Decimal(0)
    items = {item.id: item for item in instrument.items}
    for (item_id, option_id), count in counts.items():
        item = items.get(item_id)
        if item is None or item.rate not in _RATES or not count:
            continue
        positive, answers = _RATES[item.rate]
        sums[answers] += count
        option = next((o for o in item.options if o.id == option_id), None)
        if option is None:
            continue
        if option.positive:
            sums[positive] += count
        if item.rate == "satisfaction" and option.value is not None:
            sums["weighted"] += count * Decimal(str(option.value))
            sums["valued"] += count
    return sums


def _backfill_satisfaction(bind: sa.Connection) -> None:
    pins = {
        int(round_id): int(version)
        for round_id, _, version in bind.execute(
            sa.select(_pins.c.round_id, _pins.c.instrument_id, _pins.c.version).where(
                _pins.c.instrument_id == "satisfaction"
            )
        )
    }
    counts: dict[tuple[int, int], dict[tuple[str, str], int]] = defaultdict(dict)
    for round_id, org_id, item_id, option_id, count in bind.execute(sa.select(_tally)):
        counts[(int(round_id), int(org_id))][(item_id, option_id)] = int(count)
    for (round_id, org_id), branch in counts.items():
        instrument = get_instrument("satisfaction", pins.get(round_id))
        bind.execute(
            _ballots.update()
            .where(_ballots.c.round_id == round_id, _ballots.c.org_id == org_id)
            .values(**_sums(instrument, branch))
        )


def downgrade() -> None:
    op.drop_index("ix_assignment_round_org", table_name="assignment")
    op.drop_table("response_summary")
    with op.batch_alter_table("satisfaction_ballots") as batch:
        for name in (*_COUNTS, "weighted"):
            batch.drop_column(name)
