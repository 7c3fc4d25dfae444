"""Scoring of single responses and of anonymous satisfaction tallies.

A points item earns the points given; a deduction item earns max(0, points − deduction).
Choice items (the satisfaction survey) are never summed into a total: one ballot only adds
(item, option) pairs to the branch's anonymous tallies, and the three rates (三率) and the
0–100 satisfaction score are computed from those tallies (rounding rules in surveys.rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from surveys.instruments import AnswerValue, Instrument, Item
from surveys.rules import Rates, rates_from_counts, satisfaction_score

ZERO = Decimal(0)


class IncompleteResponseError(ValueError):
    """A required scored item has no answer, so no total can be given; ``missing`` lists them."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"unanswered scored items: {', '.join(missing)}")
        self.missing = missing


@dataclass(frozen=True)
class ResponseScore:
    """Points of one response: the total (None when the form has no points) and per section."""

    total: Decimal | None
    by_section: dict[str, Decimal]


def _item_points(item: Item, answer: AnswerValue | None) -> Decimal | None:
    """Points one item earns, or None when it has no usable answer."""
    if answer is None:
        return None
    if item.kind == "points":
        return answer.points
    if answer.deduction is None:
        return None
    assert item.max_points is not None  # Item validation guarantees it for deduction items
    return max(ZERO, item.max_points - answer.deduction)


def score_response(instrument: Instrument, answers: Mapping[str, AnswerValue]) -> ResponseScore:
    """Total and per-section points of one response.

    A submitted response always answers every required item, so a required points or
    deduction item without an answer raises IncompleteResponseError rather than guessing
    (an unanswered deduction line is *not* silently given full points). An optional scored
    item left unanswered earns nothing. Choice and text items never add points, so the
    satisfaction survey scores ``ResponseScore(total=None, by_section={})``.
    """
    by_section: dict[str, Decimal] = {}
    missing: list[str] = []
    for section in instrument.sections:
        scored = [item for item in section.items if item.kind in ("points", "deduction")]
        if not scored:
            continue
        subtotal = ZERO
        for item in scored:
            earned = _item_points(item, answers.get(item.id))
            if earned is None:
                if item.required:
                    missing.append(item.id)
                continue
            subtotal += earned
        by_section[section.id] = subtotal
    if missing:
        raise IncompleteResponseError(missing)
    if not by_section:
        return ResponseScore(total=None, by_section={})
    return ResponseScore(total=sum(by_section.values(), ZERO), by_section=by_section)


def satisfaction_counts(
    instrument: Instrument, answers: Mapping[str, AnswerValue]
) -> list[tuple[str, str]]:
    """The (item_id, option_id) pairs one ballot adds to the anonymous tallies, in form order."""
    return [
        (item.id, answer.choice)
        for item in instrument.items
        if item.kind == "choice"
        and (answer := answers.get(item.id)) is not None
        and answer.choice is not None
    ]


@dataclass(frozen=True)
class SatisfactionSummary:
    """Tallied satisfaction survey of one branch.

    Rates are shares between 0 and 1 with four places (None when nobody answered that
    group); score is 0–100 with two places, half up.
    """

    ballots: int
    distribution: dict[str, dict[str, int]]
    satisfied: int
    satisfaction_answers: int
    aware: int
    awareness_answers: int
    participating: int
    participation_answers: int
    satisfaction_rate: Decimal | None
    awareness_rate: Decimal | None
    participation_rate: Decimal | None
    score: Decimal | None

    @property
    def rates(self) -> Rates:
        """The three rates as one value, as surveys.rules returns them."""
        return Rates(self.satisfaction_rate, self.awareness_rate, self.participation_rate)


def _distribution(
    instrument: Instrument, tallies: Mapping[tuple[str, str], int]
) -> dict[str, dict[str, int]]:
    """Counts per choice item and option, zeros included; unknown pairs are an error."""
    distribution = {
        item.id: {option.id: 0 for option in item.options}
        for item in instrument.items
        if item.kind == "choice"
    }
    for (item_id, option_id), count in tallies.items():
        if option_id not in distribution.get(item_id, {}):
            raise KeyError(f"{instrument.key} has no choice {item_id!r}/{option_id!r}")
        if count < 0:
            raise ValueError(f"negative tally for {item_id}/{option_id}: {count}")
        distribution[item_id][option_id] += count
    return distribution


def _rate_counts(
    instrument: Instrument, distribution: Mapping[str, Mapping[str, int]], rate: str
) -> tuple[int, int]:
    """(positive answers, all answers) over the items feeding one rate."""
    positive = answered = 0
    for item in instrument.items:
        if item.rate != rate:
            continue
        for option in item.options:
            count = distribution[item.id][option.id]
            answered += count
            if option.positive:
                positive += count
    return positive, answered


def _score(instrument: Instrument, distribution: Mapping[str, Mapping[str, int]]) -> Decimal | None:
    """Mean option value over all answers to the satisfaction items (None without answers)."""
    counts: dict[str, int] = {}
    weights: dict[str, Decimal] = {}
    for item in instrument.items:
        if item.rate != "satisfaction":
            continue
        for option in item.options:
            if option.value is not None:
                # Keyed per item so two items may value the same option id differently.
                key = f"{item.id}.{option.id}"
                counts[key] = distribution[item.id][option.id]
                weights[key] = option.value
    return satisfaction_score(counts, weights)


def summarize_satisfaction(
    instrument: Instrument, ballots: int, tallies: Mapping[tuple[str, str], int]
) -> SatisfactionSummary:
    """The 三率 and the satisfaction score from one branch's anonymous tallies.

    满意率 = positive answers (满意 + 基本满意) / all answers over the ``rate: satisfaction``
    items; 知晓率 and 参与率 likewise over the awareness and participation items.
    """
    distribution = _distribution(instrument, tallies)
    satisfied, satisfaction_answers = _rate_counts(instrument, distribution, "satisfaction")
    aware, awareness_answers = _rate_counts(instrument, distribution, "awareness")
    participating, participation_answers = _rate_counts(instrument, distribution, "participation")
    rates = rates_from_counts(
        satisfied,
        satisfaction_answers,
        aware,
        awareness_answers,
        participating,
        participation_answers,
    )
    return SatisfactionSummary(
        ballots=ballots,
        distribution=distribution,
        satisfied=satisfied,
        satisfaction_answers=satisfaction_answers,
        aware=aware,
        awareness_answers=awareness_answers,
        participating=participating,
        participation_answers=participation_answers,
        satisfaction_rate=rates.satisfaction,
        awareness_rate=rates.awareness,
        participation_rate=rates.participation,
        score=_score(instrument, distribution),
    )
