"""Pure grading rules: grades, quota proposals, participation targets, rates and composites.

Everything here works on plain numbers (``Decimal`` for scores and rates, ``int`` for counts);
no database, no Telegram. Sources: docs/rules.md (seeds 000 and 001).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType

from surveys.audiences import masses_are_representatives
from surveys.categories import Audience, Category

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
_CENTS = Decimal("0.01")
# Rates keep four places so a percentage can still be shown with two decimals.
_RATE_PLACES = Decimal("0.0001")


def _round_score(value: Decimal) -> Decimal:
    """Round a score to two decimals, half up, as the paper summary sheets do."""
    return value.quantize(_CENTS, rounding=ROUND_HALF_UP)


def _round_rate(value: Decimal) -> Decimal:
    """Round a rate (a share between 0 and 1, or above when rosters are stale) to four places."""
    return value.quantize(_RATE_PLACES, rounding=ROUND_HALF_UP)


def _ceil(value: Decimal) -> int:
    """Exact ceiling of a Decimal."""
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def _floor(value: Decimal) -> int:
    """Exact floor of a Decimal."""
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def _check_score(score: Decimal) -> None:
    """Reject scores outside the 0–100 scale; they mean a bug or a typo upstream."""
    if not ZERO <= score <= HUNDRED:
        raise ValueError(f"score {score} is outside 0..100")


def _check_count(name: str, value: int) -> None:
    """Reject negative counts."""
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


# ---------------------------------------------------------------------------
# 1. Grades
# ---------------------------------------------------------------------------


class Grade(StrEnum):
    """The four grades of 分类定级."""

    GOOD = "good"  # 好
    FAIRLY_GOOD = "fairly_good"  # 较好
    AVERAGE = "average"  # 一般
    POOR = "poor"  # 较差


GRADE_ORDER: tuple[Grade, ...] = (Grade.GOOD, Grade.FAIRLY_GOOD, Grade.AVERAGE, Grade.POOR)

# Lower bound (inclusive) of each grade: "90分以上为好" includes 90 (docs/rules.md §5.1).
_GRADE_FLOORS: tuple[tuple[Decimal, Grade], ...] = (
    (Decimal(90), Grade.GOOD),
    (Decimal(80), Grade.FAIRLY_GOOD),
    (Decimal(60), Grade.AVERAGE),
)


def grade_for(score: Decimal) -> Grade:
    """Grade a 0–100 score by the fixed thresholds, comparing exact values (docs/rules.md §5.1).

    Pass the unrounded score: a score rounded to two places first turns 89.995 into 90 (好).
    """
    _check_score(score)
    for floor, grade in _GRADE_FLOORS:
        if score >= floor:
            return grade
    return Grade.POOR


# ---------------------------------------------------------------------------
# 2. Quota proposal
# ---------------------------------------------------------------------------

DEFAULT_GOOD_SHARE = Decimal("0.2")
DEFAULT_POOR_SHARE = Decimal("0.1")


class ProposalReason(StrEnum):
    """Why a branch got its proposed grade."""

    THRESHOLD = "threshold"  # the score alone decides
    GOOD_QUOTA_EXCEEDED = "good_quota_exceeded"  # would be 好, but the 好 places are taken
    VETO = "veto"  # would be 好, but a veto condition (高压线) applies
    POOR_QUOTA = "poor_quota"  # proposed 较差 to reach the ⌈10%⌉ minimum


@dataclass(frozen=True)
class Standing:
    """A graded branch's total score going into the proposal."""

    org_id: int
    score: Decimal
    vetoed: bool = False


@dataclass(frozen=True)
class Proposal:
    """The grade the bot proposes for one branch; the committee confirms or overrides it."""

    org_id: int
    score: Decimal
    rank: int
    grade: Grade
    by_threshold: Grade
    reason: ProposalReason
    tie_at_edge: bool


def quota_limits(
    n: int,
    good_share: Decimal = DEFAULT_GOOD_SHARE,
    poor_share: Decimal = DEFAULT_POOR_SHARE,
) -> tuple[int, int]:
    """Return (most 好 allowed, fewest 较差 required) for n graded branches of one pool.

    Seed 001 五 (county requirement): 好 不能超过20% → ⌊share·n⌋; 较差 不低于10% → ⌈share·n⌉
    (docs/rules.md §5.2).
    """
    _check_count("n", n)
    for name, share in (("good_share", good_share), ("poor_share", poor_share)):
        if not ZERO <= share <= ONE:
            raise ValueError(f"{name} must be between 0 and 1, got {share}")
    return _floor(good_share * n), _ceil(poor_share * n)


def _competition_ranks(ordered: Sequence[Standing]) -> list[int]:
    """Ranks 1,2,2,4 for a list already sorted by score descending."""
    ranks: list[int] = []
    for position, standing in enumerate(ordered):
        if position and standing.score == ordered[position - 1].score:
            ranks.append(ranks[-1])
        else:
            ranks.append(position + 1)
    return ranks


def _tied_scores(one_side: Sequence[Standing], other_side: Sequence[Standing]) -> set[Decimal]:
    """Scores that occur on both sides of a quota cut."""
    return {s.score for s in one_side} & {s.score for s in other_side}


def _fill_poor_quota(ordered: Sequence[Standing], min_poor: int) -> list[Standing]:
    """Branches proposed 较差 by quota: the lowest ranked not already under 60, lowest first."""
    under_60 = sum(1 for s in ordered if grade_for(s.score) is Grade.POOR)
    missing = max(0, min_poor - under_60)
    candidates = [s for s in reversed(ordered) if grade_for(s.score) is not Grade.POOR]
    return candidates[:missing]


def propose_grades(
    standings: Sequence[Standing],
    good_share: Decimal = DEFAULT_GOOD_SHARE,
    poor_share: Decimal = DEFAULT_POOR_SHARE,
    *,
    apply_quotas: bool = True,
) -> list[Proposal]:
    """Propose a grade per branch: thresholds, then the 好 cap, the veto and the 较差 minimum.

    The 较差 minimum is applied first, so in the degenerate case where it reaches into the
    ≥ 90 branches (tiny N, or everyone vetoed) the minimum wins and the 好 places go to others.
    Ties are broken by org_id so the proposal is stable; tied groups across a cut are flagged.

    The quotas constrain the final distribution of a complete pool (docs/rules.md §5.2), so
    the caller passes ``apply_quotas=False`` while any branch of the pool is incomplete: then
    only the thresholds and the veto apply and nobody is pushed down on a partial picture.
    Scores should be unrounded (docs/rules.md §5.1): 89.995 is 较好.
    """
    ids = [s.org_id for s in standings]
    if len(set(ids)) != len(ids):
        raise ValueError("each org_id may appear only once")
    for standing in standings:
        _check_score(standing.score)
    max_good, min_poor = quota_limits(len(standings), good_share, poor_share)
    if not apply_quotas:
        max_good, min_poor = len(standings), 0
    ordered = sorted(standings, key=lambda s: (-s.score, s.org_id))

    by_quota_poor = _fill_poor_quota(ordered, min_poor)
    quota_poor_ids = {s.org_id for s in by_quota_poor}
    not_quota_poor = [s for s in ordered if s.org_id not in quota_poor_ids]

    good_eligible = [s for s in not_quota_poor if not s.vetoed and grade_for(s.score) is Grade.GOOD]
    kept_good, dropped_good = good_eligible[:max_good], good_eligible[max_good:]
    dropped_good_ids = {s.org_id for s in dropped_good}

    flagged: set[int] = set()
    for tied in _tied_scores(kept_good, dropped_good):
        flagged |= {s.org_id for s in good_eligible if s.score == tied}
    for tied in _tied_scores(by_quota_poor, not_quota_poor):
        flagged |= {s.org_id for s in ordered if s.score == tied}

    proposals: list[Proposal] = []
    for standing, rank in zip(ordered, _competition_ranks(ordered), strict=True):
        by_threshold = grade_for(standing.score)
        grade, reason = by_threshold, ProposalReason.THRESHOLD
        if standing.org_id in quota_poor_ids:
            grade, reason = Grade.POOR, ProposalReason.POOR_QUOTA
        elif by_threshold is Grade.GOOD and standing.vetoed:
            grade, reason = Grade.FAIRLY_GOOD, ProposalReason.VETO
        elif standing.org_id in dropped_good_ids:
            grade, reason = Grade.FAIRLY_GOOD, ProposalReason.GOOD_QUOTA_EXCEEDED
        proposals.append(
            Proposal(
                org_id=standing.org_id,
                score=standing.score,
                rank=rank,
                grade=grade,
                by_threshold=by_threshold,
                reason=reason,
                tie_at_edge=standing.org_id in flagged,
            )
        )
    return proposals


# ---------------------------------------------------------------------------
# 3. Participation targets
# ---------------------------------------------------------------------------

# Seed 000: members ≥ 80%; masses ≥ 80% of representatives, or ≥ 50% of staff without a
# workers' congress; self-evaluation by every committee member; every assigned inspector.
DEFAULT_TARGET_RATES: Mapping[str, Decimal] = MappingProxyType(
    {
        "members": Decimal("0.8"),
        "masses": Decimal("0.8"),
        "masses_no_congress": Decimal("0.5"),
        "committee": Decimal("1"),
        "inspectors": Decimal("1"),
        "organizers": Decimal("1"),
    }
)


@dataclass(frozen=True)
class OrgProfile:
    """Roster counts of one branch that the participation targets are computed from."""

    category: Category
    members: int
    representatives: int  # 村民/居民代表 for villages and communities, 职工代表 elsewhere
    staff: int
    has_workers_congress: bool
    members_only: bool = False  # 以全体党员测评为准: the masses cannot be reached


@dataclass(frozen=True)
class Target:
    """How many of an audience must respond: ceil(rate × denominator)."""

    audience: Audience
    denominator: int
    rate: Decimal
    required: int


@lru_cache(maxsize=4096)  # pure, and a county repeats the same few denominators per audience
def _target(audience: Audience, denominator: int, rate: Decimal) -> Target:
    """Build a target, rounding the required count up exactly (80% of 11 → 9)."""
    _check_count(f"{audience} denominator", denominator)
    return Target(audience, denominator, rate, _ceil(rate * denominator))


def _merged_rates(overrides: Mapping[str, Decimal] | None) -> dict[str, Decimal]:
    """Default rates with the round's overrides applied; unknown keys are typos, so refused."""
    rates = dict(DEFAULT_TARGET_RATES)
    for key, rate in (overrides or {}).items():
        if key not in rates:
            raise ValueError(f"unknown target rate key: {key!r}")
        if not ZERO <= rate <= ONE:
            raise ValueError(f"target rate {key!r} must be between 0 and 1, got {rate}")
        rates[key] = rate
    return rates


def _masses_target(profile: OrgProfile, rates: Mapping[str, Decimal]) -> Target:
    """The masses target: representatives where they exist, else half of all staff."""
    if masses_are_representatives(
        profile.category, has_workers_congress=profile.has_workers_congress
    ):
        return _target(Audience.MASSES, profile.representatives, rates["masses"])
    return _target(Audience.MASSES, profile.staff, rates["masses_no_congress"])


def targets_for(
    profile: OrgProfile,
    *,
    committee_members: int,
    inspectors: int,
    organizers: int = 0,
    overrides: Mapping[str, Decimal] | None = None,
) -> dict[Audience, Target]:
    """Participation targets of one branch for a round; the township committee has none."""
    rates = _merged_rates(overrides)
    if profile.category is Category.COMMITTEE:
        return {}
    targets = [_target(Audience.MEMBERS, profile.members, rates["members"])]
    if not profile.members_only:
        targets.append(_masses_target(profile, rates))
    targets.append(_target(Audience.COMMITTEE, committee_members, rates["committee"]))
    targets.append(_target(Audience.INSPECTORS, inspectors, rates["inspectors"]))
    if organizers > 0:
        targets.append(_target(Audience.ORGANIZERS, organizers, rates["organizers"]))
    return {target.audience: target for target in targets}


# ---------------------------------------------------------------------------
# 4. Coverage against a target
# ---------------------------------------------------------------------------


class CoverageStatus(StrEnum):
    """Where an audience stands against its participation target."""

    MET = "met"
    BEHIND = "behind"
    NO_DATA = "no_data"  # the roster gives no denominator, so the target cannot be judged


@dataclass(frozen=True)
class Coverage:
    """Respondents of one audience compared with its target."""

    audience: Audience
    respondents: int
    denominator: int
    rate: Decimal | None
    target_rate: Decimal
    required: int
    needed: int
    status: CoverageStatus


@lru_cache(maxsize=16384)  # pure and frozen: a county tally asks the same pairs many times
def coverage_for(target: Target, respondents: int) -> Coverage:
    """Compare respondents with a target.

    A denominator of 0 is NO_DATA (the roster count is missing, whatever the respondents);
    otherwise respondents ≥ required is MET and anything less, including nobody, is BEHIND.
    The rate is not clipped at 1: more respondents than the roster shows means a stale roster.
    """
    _check_count("respondents", respondents)
    rate = None
    if target.denominator:
        rate = _round_rate(Decimal(respondents) / Decimal(target.denominator))
    if target.denominator == 0:
        status = CoverageStatus.NO_DATA
    elif respondents >= target.required:
        status = CoverageStatus.MET
    else:
        status = CoverageStatus.BEHIND
    return Coverage(
        audience=target.audience,
        respondents=respondents,
        denominator=target.denominator,
        rate=rate,
        target_rate=target.rate,
        required=target.required,
        needed=max(0, target.required - respondents),
        status=status,
    )


# ---------------------------------------------------------------------------
# 5. The three rates and the satisfaction score
# ---------------------------------------------------------------------------

DEFAULT_SATISFACTION_WEIGHTS: Mapping[str, Decimal] = MappingProxyType(
    {
        "satisfied": Decimal(100),
        "basically_satisfied": Decimal(60),
        "dissatisfied": Decimal(0),
    }
)


@dataclass(frozen=True)
class Rates:
    """满意率, 知晓率, 参与率 as shares (0–1, four places); None when nobody answered."""

    satisfaction: Decimal | None
    awareness: Decimal | None
    participation: Decimal | None


def _share(part: int, whole: int) -> Decimal | None:
    """part / whole rounded to four places, or None for an empty whole."""
    _check_count("count", part)
    _check_count("answers", whole)
    if part > whole:
        raise ValueError(f"{part} positive answers out of only {whole}")
    if whole == 0:
        return None
    return _round_rate(Decimal(part) / Decimal(whole))


def rates_from_counts(
    satisfied: int,
    satisfaction_answers: int,
    aware: int,
    awareness_answers: int,
    participating: int,
    participation_answers: int,
) -> Rates:
    """The three rates from counts of positive answers over all answers of each question group."""
    return Rates(
        satisfaction=_share(satisfied, satisfaction_answers),
        awareness=_share(aware, awareness_answers),
        participation=_share(participating, participation_answers),
    )


def satisfaction_score(
    counts: Mapping[str, int],
    weights: Mapping[str, Decimal] = DEFAULT_SATISFACTION_WEIGHTS,
) -> Decimal | None:
    """Mean option weight over all Q1–Q5 answers (0–100, unrounded); None without answers."""
    unknown = set(counts) - set(weights)
    if unknown:
        raise ValueError(f"no weight for options: {sorted(unknown)}")
    for option, count in counts.items():
        _check_count(option, count)
    total = sum(counts.values())
    if total == 0:
        return None
    weighted = sum((weights[option] * count for option, count in counts.items()), ZERO)
    return weighted / total  # unrounded: compared exactly, rounded for display (rules §5.1)


# ---------------------------------------------------------------------------
# 6. Provisional composite and 7. mean
# ---------------------------------------------------------------------------

DEFAULT_COMPOSITE_WEIGHTS: Mapping[str, Decimal] = MappingProxyType(
    {
        "self_evaluation": Decimal("0.3"),
        "satisfaction": Decimal("0.4"),
        "inspection": Decimal("0.3"),
    }
)


@dataclass(frozen=True)
class Composite:
    """A provisional total; weights_used are the renormalized weights of the parts present."""

    score: Decimal | None
    weights_used: dict[str, Decimal]
    missing: tuple[str, ...]


def composite(
    parts: Mapping[str, Decimal | None],
    weights: Mapping[str, Decimal] = DEFAULT_COMPOSITE_WEIGHTS,
) -> Composite:
    """Weighted total of the parts present, weights renormalized to sum to 1; unrounded.

    A part absent from ``parts`` counts as missing. weights_used are exact quotients
    (not rounded), so the caller chooses how to display them.
    """
    if not parts.keys() <= weights.keys():
        raise ValueError(f"no weight for parts: {sorted(set(parts) - set(weights))}")
    present: dict[str, Decimal] = {}
    for name in weights:
        value = parts.get(name)
        if value is not None:
            if not ZERO <= value <= HUNDRED:  # _check_score, inline: once per part per branch
                _check_score(value)
            present[name] = value
    weights_used, missing = _shape(tuple(present), tuple(weights.items()))
    if not weights_used:
        return Composite(score=None, weights_used={}, missing=missing)
    total_weight = sum((weights[name] for name in present), ZERO)
    weighted = sum((weights[name] * value for name, value in present.items()), ZERO)
    return Composite(
        score=weighted / total_weight,  # unrounded (docs/rules.md §5.1)
        weights_used=dict(weights_used),  # a copy: the cached one is shared
        missing=missing,
    )


@lru_cache(maxsize=256)  # a county has a handful of (parts present, weights) shapes
def _shape(
    present: tuple[str, ...], weights: tuple[tuple[str, Decimal], ...]
) -> tuple[Mapping[str, Decimal], tuple[str, ...]]:
    """Renormalized weights of the parts present (none if they weigh 0) and the missing ones."""
    weight = dict(weights)
    missing = tuple(name for name in weight if name not in present)
    total_weight = sum((weight[name] for name in present), ZERO)
    if total_weight == 0:
        return {}, missing
    return {name: weight[name] / total_weight for name in present}, missing


def mean(values: Sequence[Decimal]) -> Decimal | None:
    """Average of several scorers' totals, unrounded; None when nobody scored."""
    if not values:
        return None
    return sum(values, ZERO) / len(values)  # unrounded (docs/rules.md §5.1)
