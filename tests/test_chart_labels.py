"""Chart bars carry their values (issue 14), read from the figure's own text artists."""

from __future__ import annotations

from decimal import Decimal

from matplotlib.figure import Figure
from sqlalchemy import Engine
from sqlmodel import Session

from bot import charts
from storage.db import transaction
from storage.tallies import RoundTally, round_tally
from tests.factories import build_graded_township


def _tally(engine: Engine) -> RoundTally:
    with transaction(engine) as session:
        round_id, _ = build_graded_township(session, [Decimal("88.5"), 92, 75])
    with Session(engine) as session:
        return round_tally(session, round_id=round_id)


def texts(figure: Figure) -> list[list[str]]:
    """The text artists of each axes (value labels are annotations there), per axes."""
    return [[text.get_text() for text in axes.texts] for axes in figure.axes]


def test_score_bars_are_labelled_with_the_score_and_grade_bars_with_the_count(
    engine: Engine,
) -> None:
    figure = charts.score_figure(_tally(engine), "zh_CN")
    scores, grades = texts(figure)
    assert sorted(scores) == ["75", "88.5", "92"], "trailing zeros dropped as in the tables"
    # Four grade columns (好, 较好, 一般, 较差). The pool of three is complete, so its
    # quotas apply: no 好 (at most 0), at least one 较差 (docs/rules.md §5.2).
    assert grades == ["0", "2", "0", "1"]


def test_participation_bars_are_labelled_with_respondents_against_the_target(
    engine: Engine,
) -> None:
    (labels,) = texts(charts.participation_figure(_tally(engine), "zh_CN"))
    # Each village: its one member answered, against a target of one.
    assert labels == ["1/1", "1/1", "1/1"]
