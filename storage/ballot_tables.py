"""The tables a tally reads whole: the anonymous counters, the sealed box, the summaries.

Split from ``storage.models`` (which re-exports every class) to keep each module small; the
anonymity rules in that module's docstring apply here. ``SatisfactionBallots`` holds, beside
the number of ballots, the sums the three rates and the score need (storage.summary): like
every counter they are written only by a fold, never in a voter's transaction.
``ResponseSummary`` sums the named responses (self-evaluation, inspection, superior scoring)
per branch and instrument, so a tally reads one row per branch and part.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column
from sqlmodel import Field, SQLModel

import storage.naming  # noqa: F401  (the constraint names, before any table)
from storage.sealing import SealedJSON

# --- Anonymous satisfaction ballots (see storage.models' docstring) ---------------------------


class SatisfactionTally(SQLModel, table=True):
    """How many ballots of a branch chose an option of a question: counts, never ballots."""

    __tablename__ = "satisfaction_tally"
    __table_args__ = (CheckConstraint("count >= 0", name="count"),)

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    item_id: str = Field(primary_key=True, max_length=40)
    option_id: str = Field(primary_key=True, max_length=40)
    count: int = 0


class SatisfactionBallots(SQLModel, table=True):
    """How many satisfaction ballots a branch has received, and what the tally needs of them.

    The sums are the counters summed the way ``surveys.rules.rates_from_counts`` and the
    score want them: positive and all answers of each rate, Σ count × option value over the
    valued satisfaction answers and how many those are. The fold adds to them in the same
    statement that adds to ``ballots`` (storage.summary).
    """

    __tablename__ = "satisfaction_ballots"
    __table_args__ = (CheckConstraint("ballots >= 0", name="ballots"),)

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    ballots: int = 0
    satisfied: int = 0
    satisfaction_answers: int = 0
    aware: int = 0
    awareness_answers: int = 0
    participating: int = 0
    participation_answers: int = 0
    weighted: Decimal = Field(default=Decimal(0), max_digits=14, decimal_places=2)
    valued: int = 0


class SatisfactionComments(SQLModel, table=True):
    """Free-text suggestions of a branch, reshuffled on every insert."""

    __tablename__ = "satisfaction_comments"

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    comments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


# --- The sealed ballot box (see storage.models' docstring; storage.ballots) -------------------


class SatisfactionBox(SQLModel, table=True):
    """Sealed satisfaction ballots of a branch waiting to be folded into the counters."""

    __tablename__ = "satisfaction_box"

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    # One sealed list of ballots ({"c": [[item, option], …], "t": [suggestion, …]}).
    ballots: list[Any] = Field(default_factory=list, sa_column=Column(SealedJSON, nullable=False))


# --- Named responses summed (storage.summary) -------------------------------------------------


class ResponseSummary(SQLModel, table=True):
    """Sum and number of the scored named responses of a branch for one instrument.

    Named responses are not secret; this row is added to in the submitter's transaction.
    The anonymous survey never has a row here.
    """

    __tablename__ = "response_summary"
    __table_args__ = (CheckConstraint("responses >= 0", name="responses"),)

    round_id: int = Field(foreign_key="round.id", primary_key=True, ondelete="CASCADE")
    org_id: int = Field(foreign_key="organization.id", primary_key=True)
    instrument_id: str = Field(primary_key=True, max_length=40)
    total: Decimal = Field(default=Decimal(0), max_digits=14, decimal_places=2)
    responses: int = 0
