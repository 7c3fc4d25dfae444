"""The seed rules over a whole pool: status, quotas, vetoes, privacy, decisions, review.

Every expected grade here is worked out by hand from the seeds (docs/rules.md), and the
arithmetic is written next to the data so a township organizer can check it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from surveys.categories import Audience, Category, Role
from surveys.decisions import (
    DecisionException,
    Unlock,
    ViolationKind,
    check_decisions,
    confirm_exception,
    ready_to_report,
    request_exception,
    unresolved,
)
from surveys.grading import (
    Basis,
    BranchFacts,
    InstitutionSheet,
    Part,
    ParticipationWaiver,
    Pool,
    PoolProposal,
    Remedy,
    Rerun,
    Status,
    deadline_passed,
    disclosure,
    display_score,
    exact_composite,
    exact_mean,
    in_scope,
    inspection_sheet,
    pool_for,
    propose_pool,
    required_parts,
    shortfalls,
)
from surveys.review import (
    AnnouncedTally,
    GradingRole,
    Movement,
    ReviewAction,
    ReviewError,
    ReviewState,
    Signer,
    close_item,
    fully_signed,
    key_problems_check,
    may_sign,
    may_unlock,
    movement,
    quarter_of,
    regrade,
    review_step,
)
from surveys.rules import (
    Grade,
    OrgProfile,
    ProposalReason,
    composite,
    coverage_for,
    grade_for,
    targets_for,
)

D = Decimal
GOOD, FAIR, AVG, POOR = Grade.GOOD, Grade.FAIRLY_GOOD, Grade.AVERAGE, Grade.POOR
ALL_PARTS = (Part.SELF_EVALUATION, Part.SATISFACTION, Part.INSPECTION, Part.SUPERIOR_SCORING)


def facts(
    org_id: int,
    category: Category,
    superior: str | None,
    *,
    self_eval: str | None = "80",
    satisfaction: str | None = "80",
    inspection: str | None = "80",
    **extra: object,
) -> BranchFacts:
    """One branch's facts; parts given as strings so every value is an exact Decimal."""
    values = (self_eval, satisfaction, inspection, superior)
    parts = {p: (D(v) if v is not None else None) for p, v in zip(ALL_PARTS, values, strict=True)}
    return BranchFacts(org_id, category, parts, **extra)  # type: ignore[arg-type]


def grades(pool: PoolProposal) -> dict[int, Grade | None]:
    return {b.org_id: b.grade for b in pool.branches}


# --- The hand-computed township: 13 村(社区) and 5 两新 --------------------------------------


@dataclass(frozen=True)
class Row:
    org_id: int
    name: str
    category: Category
    scorers: tuple[str, str]  # the two organizers' 上级评分 totals
    composite_parts: tuple[str, str, str]  # self-evaluation, satisfaction, inspection
    vetoed: bool
    expected: Grade
    reason: ProposalReason


V, C, E, S = Category.VILLAGE, Category.COMMUNITY, Category.ENTERPRISE, Category.SOCIAL
TH, GQ, VT, PQ = (
    ProposalReason.THRESHOLD,
    ProposalReason.GOOD_QUOTA_EXCEEDED,
    ProposalReason.VETO,
    ProposalReason.POOR_QUOTA,
)

# Pool 村(社区), N = 13 (seed 001 三). Quotas (seed 001 五): 好 ≤ ⌊0.2·13⌋ = ⌊2.6⌋ = 2,
# 较差 ≥ ⌈0.1·13⌉ = ⌈1.3⌉ = 2. The basis is the committee's score (every branch has one),
# the mean of two organizers, compared unrounded (seed 001 五: 90分以上为好).
#   1 永安村   (97 + 95)/2     = 96       ≥ 90 → 好, 1st of the 2 places
#   2 新桥村   (93 + 92)/2     = 92.5     ≥ 90 but 高压线 (seed 004) → 较好 (veto)
#   3 城东社区 (91 + 91)/2     = 91       ≥ 90, 2nd place (新桥 cannot take it) → 好
#   4 南湖村   (89.99 + 90)/2  = 89.995   < 90 unrounded → 较好 (shown as 90.00!)
#   5 北山村   (86 + 86)/2     = 86       → 较好;  6 城西社区 (85 + 83)/2 = 84 → 较好
#   7 东林村   (80 + 80)/2     = 80       "80—89分为较好" includes 80 → 较好
#   8 西河村   (80 + 79)/2     = 79.5     → 一般;  9 石桥村 75 → 一般; 10 城南社区 72 → 一般
#  11 杨树村   68 → 一般
#  12 柳湾村   (64 + 62)/2     = 63       only one branch is under 60, the minimum is 2:
#                                          the lowest of the rest → 较差 by quota
#  13 桃源村   (60 + 56)/2     = 58       < 60 → 较差
# The composites (30/40/30) would rank differently (柳湾 93.9 would be 1st): not used.
# Pool 两新, N = 5 (seed 002): 好 ≤ ⌊1.0⌋ = 1, 较差 ≥ ⌈0.5⌉ = 1.
#  14 华兴企业 93 → 好;  15 宏达企业 90 ≥ 90 but the one place is taken → 较好 (quota)
#  16 义工协会 81 → 较好;  17 恒丰企业 66 → 一般
#  18 商会     61 → nobody under 60, so the lowest → 较差 by quota
TOWNSHIP: tuple[Row, ...] = (
    Row(1, "永安村", V, ("97", "95"), ("90", "95", "92"), False, GOOD, TH),
    Row(2, "新桥村", V, ("93", "92"), ("88", "90", "91"), True, FAIR, VT),
    Row(3, "城东社区", C, ("91", "91"), ("85", "88", "90"), False, GOOD, TH),
    Row(4, "南湖村", V, ("89.99", "90"), ("86", "92", "88"), False, FAIR, TH),
    Row(5, "北山村", V, ("86", "86"), ("84", "86", "85"), False, FAIR, TH),
    Row(6, "城西社区", C, ("85", "83"), ("80", "84", "82"), False, FAIR, TH),
    Row(7, "东林村", V, ("80", "80"), ("80", "78", "80"), False, FAIR, TH),
    Row(8, "西河村", V, ("80", "79"), ("78", "80", "76"), False, AVG, TH),
    Row(9, "石桥村", V, ("75", "75"), ("75", "74", "76"), False, AVG, TH),
    Row(10, "城南社区", C, ("72", "72"), ("70", "75", "70"), False, AVG, TH),
    Row(11, "杨树村", V, ("68", "68"), ("66", "70", "68"), False, AVG, TH),
    Row(12, "柳湾村", V, ("64", "62"), ("95", "93", "94"), False, POOR, PQ),
    Row(13, "桃源村", V, ("60", "56"), ("60", "58", "55"), False, POOR, TH),
    Row(14, "华兴企业", E, ("93", "93"), ("90", "92", "90"), False, GOOD, TH),
    Row(15, "宏达企业", E, ("90", "90"), ("88", "90", "86"), False, FAIR, GQ),
    Row(16, "义工协会", S, ("81", "81"), ("80", "82", "80"), False, FAIR, TH),
    Row(17, "恒丰企业", E, ("66", "66"), ("70", "64", "66"), False, AVG, TH),
    Row(18, "商会", S, ("61", "61"), ("60", "62", "61"), False, POOR, PQ),
)


def township_facts(rows: tuple[Row, ...] = TOWNSHIP) -> list[BranchFacts]:
    """Each row as the facts storage would pass: parts unrounded, participation met."""
    out = []
    for row in rows:
        superior = exact_mean([D(s) for s in row.scorers])
        self_eval, satisfaction, inspection = (D(p) for p in row.composite_parts)
        parts = {
            Part.SELF_EVALUATION: self_eval,
            Part.SATISFACTION: satisfaction,
            Part.INSPECTION: inspection,
            Part.SUPERIOR_SCORING: superior,
        }
        out.append(BranchFacts(row.org_id, row.category, parts, vetoed=row.vetoed))
    return out


def grade_township() -> dict[Pool, PoolProposal]:
    by_pool: dict[Pool, list[BranchFacts]] = {}
    for f in township_facts():
        pool = pool_for(f.category)
        assert pool is not None
        by_pool.setdefault(pool, []).append(f)
    return {pool: propose_pool(pool, members) for pool, members in by_pool.items()}


def test_the_hand_computed_township_is_graded_exactly_as_the_seeds_would() -> None:
    pools = grade_township()
    assert set(pools) == {Pool.VILLAGE_COMMUNITY, Pool.TWO_NEW}
    villages, two_new = pools[Pool.VILLAGE_COMMUNITY], pools[Pool.TWO_NEW]
    assert (villages.graded, villages.max_good, villages.min_poor) == (13, 2, 2)
    assert (two_new.graded, two_new.max_good, two_new.min_poor) == (5, 1, 1)
    for pool in (villages, two_new):
        assert pool.complete and not pool.provisional and pool.basis is Basis.SUPERIOR
    got = {b.org_id: (b.grade, b.reason) for p in pools.values() for b in p.branches}
    assert got == {row.org_id: (row.expected, row.reason) for row in TOWNSHIP}


def test_the_township_ranks_on_the_committee_scores_in_order() -> None:
    villages = grade_township()[Pool.VILLAGE_COMMUNITY]
    assert [b.org_id for b in villages.branches] == list(range(1, 14))
    assert villages.branch(4).score == D("89.995")  # type: ignore[union-attr]
    assert display_score(D("89.995")) == D("90.00")  # shown rounded, graded exact


def test_the_quotas_hold_per_pool_not_over_the_whole_township() -> None:
    # One pool of 18 would allow ⌊3.6⌋ = 3 好: 宏达企业 (90) would be 好. Per pool it is not.
    pools = grade_township()
    assert pools[Pool.TWO_NEW].branch(15).grade is FAIR  # type: ignore[union-attr]
    assert sum(g is GOOD for p in pools.values() for g in grades(p).values()) == 3


# --- 1. Proposals that make sense at every moment -------------------------------------------


def test_mid_round_the_only_branch_with_answers_is_not_proposed_poor() -> None:
    # 13 villages; only 永安村 has answers: 6 ballots, all 满意 → satisfaction 100.
    only = facts(1, V, None, self_eval=None, satisfaction="100", inspection=None)
    others = [
        facts(i, V, None, self_eval=None, satisfaction=None, inspection=None) for i in range(2, 14)
    ]
    pool = propose_pool(Pool.VILLAGE_COMMUNITY, [only, *others])
    branch = pool.branch(1)
    assert branch is not None and branch.grade is None
    assert branch.status.status is Status.INCOMPLETE
    assert branch.status.missing == (Part.SELF_EVALUATION, Part.INSPECTION, Part.SUPERIOR_SCORING)
    assert pool.provisional and pool.max_good is None and pool.min_poor is None


def test_a_complete_top_branch_in_an_incomplete_pool_is_provisionally_good() -> None:
    # A round ranked on composites: 永安村 has all three parts (100 each), the rest nothing.
    # Old rule: quotas over the 1 scored branch → ⌈0.1⌉ = 1 较差, so 100 was proposed 较差.
    only = facts(1, V, None, self_eval="100", satisfaction="100", inspection="100")
    others = [
        facts(i, V, None, self_eval=None, satisfaction=None, inspection=None) for i in range(2, 14)
    ]
    pool = propose_pool(Pool.VILLAGE_COMMUNITY, [only, *others], superior_scoring=False)
    assert pool.provisional and pool.basis is Basis.COMPOSITE
    top = pool.branch(1)
    assert top is not None and (top.grade, top.reason) == (GOOD, ProposalReason.THRESHOLD)


def test_no_quota_pushes_anyone_down_until_the_pool_is_complete() -> None:
    # 12 of 13 complete, four ≥ 90: provisional, all four stay 好 and nobody is filled 较差.
    done = [
        facts(i, V, s)
        for i, s in enumerate(
            ["99", "95", "93", "91", "85", "80", "75", "72", "70", "68", "65", "62"], 1
        )
    ]
    late = facts(13, V, None)
    pool = propose_pool(Pool.VILLAGE_COMMUNITY, [*done, late])
    assert pool.provisional
    assert [b.grade for b in pool.branches[:4]] == [GOOD] * 4
    assert POOR not in grades(pool).values()
    # The last score arrives: now the quotas apply (2 好, 2 较差).
    complete = propose_pool(Pool.VILLAGE_COMMUNITY, [*done, facts(13, V, "88")])
    assert complete.complete
    assert list(grades(complete).values()).count(GOOD) == 2
    assert list(grades(complete).values()).count(POOR) == 2


def test_a_tie_at_the_good_edge_of_a_complete_pool_is_flagged() -> None:
    # 10 villages → ⌊2.0⌋ = 2 好 places; 2 and 3 tie at 92 for the second one.
    scores = ["95", "92", "92", "85", "80", "75", "70", "68", "65", "55"]
    pool = propose_pool(Pool.VILLAGE_COMMUNITY, [facts(i, V, s) for i, s in enumerate(scores, 1)])
    assert pool.complete
    flagged = {b.org_id: (b.grade, b.tie_at_edge) for b in pool.branches[:4]}
    assert flagged == {1: (GOOD, False), 2: (GOOD, True), 3: (FAIR, True), 4: (FAIR, False)}


def test_a_vetoed_branch_is_not_good_even_provisionally() -> None:
    pool = propose_pool(Pool.VILLAGE_COMMUNITY, [facts(1, V, "95", vetoed=True), facts(2, V, None)])
    assert pool.provisional
    assert (pool.branch(1).grade, pool.branch(1).reason) == (FAIR, ProposalReason.VETO)  # type: ignore[union-attr]


# --- 2. Participation as a condition ---------------------------------------------------------


def volunteers_facts(*, deadline_passed: bool, **extra: object) -> BranchFacts:
    """董浜镇志愿者协会: 16 members, no 职代会, 12 staff; 3 members answered, no staff.

    Targets (seed 000 二.2): members ⌈0.8·16⌉ = ⌈12.8⌉ = 13 → 10 more needed;
    staff without a 职代会 ⌈0.5·12⌉ = 6 → 6 more needed.
    """
    profile = OrgProfile(S, members=16, representatives=0, staff=12, has_workers_congress=False)
    targets = targets_for(profile, committee_members=3, inspectors=1)
    answered = {Audience.MEMBERS: 3, Audience.MASSES: 0}
    shortfalls = {a: coverage_for(targets[a], n).needed for a, n in answered.items()}
    assert shortfalls == {Audience.MEMBERS: 10, Audience.MASSES: 6}
    # All three ballots 不满意 → satisfaction 0; self-evaluation 80, inspection 85.5.
    return facts(
        7,
        S,
        None,
        self_eval="80",
        satisfaction="0",
        inspection="85.5",
        shortfalls=shortfalls,
        deadline_passed=deadline_passed,
        **extra,
    )


def test_below_target_at_the_deadline_is_participation_not_met_not_graded() -> None:
    pool = propose_pool(
        Pool.TWO_NEW, [volunteers_facts(deadline_passed=True)], superior_scoring=False
    )
    branch = pool.branch(7)
    assert branch is not None and branch.grade is None
    assert branch.status.status is Status.PARTICIPATION_NOT_MET
    assert branch.status.shortfalls == {Audience.MEMBERS: 10, Audience.MASSES: 6}
    assert branch.status.remedies == (Remedy.RERUN, Remedy.WAIVER)
    # Resolved as not graded: the pool is complete with no branch to grade.
    assert pool.complete and pool.graded == 0


def test_below_target_before_the_deadline_is_incomplete_and_says_how_many_are_missing() -> None:
    status = (
        propose_pool(
            Pool.TWO_NEW, [volunteers_facts(deadline_passed=False)], superior_scoring=False
        )
        .branches[0]
        .status
    )
    assert status.status is Status.INCOMPLETE
    assert status.shortfalls == {Audience.MEMBERS: 10, Audience.MASSES: 6}


def test_an_organizers_waiver_with_a_reason_lets_the_branch_be_graded_on_all_its_ballots() -> None:
    waiver = ParticipationWaiver(reason="企业停产, 职工无法召集", decided_by=900)
    branch = propose_pool(
        Pool.TWO_NEW,
        [volunteers_facts(deadline_passed=True, waiver=waiver)],
        superior_scoring=False,
    ).branches[0]
    assert branch.status.status is Status.COMPLETE and branch.status.waived
    # 0.3·80 + 0.4·0 + 0.3·85.5 = 24 + 0 + 25.65 = 49.65 → 较差 (only branch: quota 1 较差 too)
    assert branch.score == D("49.65") and branch.grade is POOR


def test_a_waiver_needs_a_reason() -> None:
    with pytest.raises(ValueError):
        ParticipationWaiver(reason="  ", decided_by=900)


def test_a_rerun_has_its_own_deadline_and_needs_a_reason() -> None:
    phase_end = datetime(2027, 3, 18, 10, tzinfo=UTC)
    rerun = Rerun(deadline=datetime(2027, 3, 25, 10, tzinfo=UTC), reason="补测", ordered_by=900)
    a_day_later = datetime(2027, 3, 19, 10, tzinfo=UTC)
    assert deadline_passed(a_day_later, phase_end)
    assert not deadline_passed(a_day_later, phase_end, rerun)  # incomplete again, not 未达标
    assert deadline_passed(datetime(2027, 3, 25, 10, tzinfo=UTC), phase_end, rerun)
    with pytest.raises(ValueError):
        Rerun(deadline=phase_end, reason="", ordered_by=900)


def test_shortfalls_come_from_the_coverage_of_members_and_masses_only() -> None:
    profile = OrgProfile(V, members=16, representatives=10, staff=0, has_workers_congress=False)
    targets = targets_for(profile, committee_members=3, inspectors=2)
    coverage = {a: coverage_for(t, 0) for a, t in targets.items()}
    # members ⌈12.8⌉ = 13, representatives ⌈8.0⌉ = 8; committee and inspectors are not counted
    assert shortfalls(coverage) == {Audience.MEMBERS: 13, Audience.MASSES: 8}


def test_members_only_has_no_masses_target_so_members_alone_decide() -> None:
    # 以全体党员测评为准 (seed 000 二.2): 13 of 16 members answered, no staff at all.
    profile = OrgProfile(S, 16, 0, 12, False, members_only=True)
    targets = targets_for(profile, committee_members=3, inspectors=1)
    assert Audience.MASSES not in targets
    shortfalls = {Audience.MEMBERS: coverage_for(targets[Audience.MEMBERS], 13).needed}
    branch = propose_pool(
        Pool.TWO_NEW,
        [facts(7, S, None, shortfalls=shortfalls, deadline_passed=True)],
        superior_scoring=False,
    ).branches[0]
    assert branch.status.status is Status.COMPLETE


# --- 3. Privacy may hide a number, never change a grade --------------------------------------


def test_a_small_group_hides_the_satisfaction_and_the_composite_but_keeps_the_grade() -> None:
    shown = disclosure(ballots=3, threshold=5)
    assert shown.small_group and not shown.satisfaction and not shown.composite and shown.parts
    assert disclosure(ballots=5, threshold=5).composite
    # The three hidden 不满意 ballots still count: 49.65, 较差 — not 82.75 (较好), which is
    # what leaving them out of the composite gave: (0.3·80 + 0.3·85.5) / 0.6 = 82.75.
    waiver = ParticipationWaiver("补测无法进行", 900)
    branch = propose_pool(
        Pool.TWO_NEW,
        [volunteers_facts(deadline_passed=True, waiver=waiver)],
        superior_scoring=False,
    ).branches[0]
    dropped = exact_composite({Part.SELF_EVALUATION: D(80), Part.INSPECTION: D("85.5")})
    assert dropped == D("82.75") and grade_for(dropped) is FAIR
    assert branch.grade is POOR


def _random_pool(rng: random.Random) -> list[BranchFacts]:
    n = rng.randint(1, 20)
    out = []
    for org_id in range(1, n + 1):

        def part() -> str | None:
            return None if rng.random() < 0.1 else str(D(rng.randint(3000, 10000)) / 100)

        out.append(
            facts(
                org_id,
                V,
                None,
                self_eval=part(),
                satisfaction=part(),
                inspection=part(),
                vetoed=rng.random() < 0.1,
            )
        )
    return out


def test_low_turnout_can_never_raise_a_grade_random_pools() -> None:
    # Turning a branch's hidden ballots to 不满意 (its satisfaction down to any lower value)
    # never raises its grade, whatever the pool, completeness, vetoes or quotas.
    order = {GOOD: 0, FAIR: 1, AVG: 2, POOR: 3}
    rng = random.Random(20270315)
    for _ in range(400):
        pool = _random_pool(rng)
        target = rng.choice(pool)
        before = propose_pool(Pool.VILLAGE_COMMUNITY, pool, superior_scoring=False)
        current = target.parts[Part.SATISFACTION]
        if current is None:
            continue
        lowered = dict(target.parts) | {Part.SATISFACTION: current * D(rng.random())}
        changed = [
            f if f is not target else BranchFacts(f.org_id, f.category, lowered, vetoed=f.vetoed)
            for f in pool
        ]
        after = propose_pool(Pool.VILLAGE_COMMUNITY, changed, superior_scoring=False)
        old, new = before.branch(target.org_id).grade, after.branch(target.org_id).grade  # type: ignore[union-attr]
        if old is not None and new is not None:
            assert order[new] >= order[old]


# --- 5. One basis for a ranking ---------------------------------------------------------------


def test_a_pool_with_some_committee_scores_ranks_all_on_composites() -> None:
    # Branch 1 has a committee score of 60, branch 2 none; the round does not require one.
    pool = propose_pool(
        Pool.VILLAGE_COMMUNITY,
        [facts(1, V, "60", self_eval="95", satisfaction="95", inspection="95"), facts(2, V, None)],
        superior_scoring=False,
    )
    assert pool.basis is Basis.COMPOSITE
    assert pool.branch(1).score == D(95) and pool.branch(2).score == D(80)  # type: ignore[union-attr]


def test_when_every_ranked_branch_has_a_committee_score_the_basis_is_the_committee() -> None:
    pool = propose_pool(
        Pool.VILLAGE_COMMUNITY,
        [facts(1, V, "60", self_eval="95", satisfaction="95", inspection="95"), facts(2, V, "85")],
    )
    assert pool.basis is Basis.SUPERIOR
    assert [b.org_id for b in pool.branches] == [2, 1]


# --- 6. Pools and scope -----------------------------------------------------------------------


def test_pools_follow_the_seeds_and_the_committee_is_in_none() -> None:
    assert pool_for(V) is pool_for(C) is Pool.VILLAGE_COMMUNITY
    assert pool_for(E) is pool_for(S) is Pool.TWO_NEW
    assert pool_for(Category.INSTITUTION) is Pool.INSTITUTION
    assert pool_for(Category.COMMITTEE) is None


def test_a_round_scoped_to_villages_and_communities_leaves_the_two_new_out() -> None:
    scope = {V, C}
    assert in_scope(V, scope) and in_scope(C, scope)
    assert not in_scope(E, scope) and not in_scope(S, scope)
    assert in_scope(E, None) and not in_scope(Category.COMMITTEE, None)


def test_a_branch_of_another_pool_is_refused() -> None:
    with pytest.raises(ValueError):
        propose_pool(Pool.VILLAGE_COMMUNITY, [facts(1, E, "90")])


# --- 11. Inspection sheet for 机关事业单位 ----------------------------------------------------


def test_institutions_are_not_inspected_by_default_and_the_round_may_choose_a_sheet() -> None:
    inst = Category.INSTITUTION
    assert inspection_sheet(inst) is None
    assert Part.INSPECTION not in required_parts(inst)
    assert inspection_sheet(inst, InstitutionSheet.VILLAGE) == "inspection_village"
    assert Part.INSPECTION in required_parts(inst, institution_sheet=InstitutionSheet.TWO_NEW)
    assert (
        inspection_sheet(V) == "inspection_village" and inspection_sheet(S) == "inspection_two_new"
    )
    # Complete without an inspection: composite over self-evaluation and satisfaction.
    # (0.3·90 + 0.4·80) / 0.7 = 59 / 0.7 = 84.2857… → 较好
    branch = propose_pool(
        Pool.INSTITUTION,
        [facts(1, inst, None, self_eval="90", satisfaction="80", inspection=None)],
        superior_scoring=False,
    ).branches[0]
    assert branch.status.status is Status.COMPLETE
    assert display_score(branch.score) == D("84.29") and branch.by_threshold is FAIR  # type: ignore[arg-type]


# --- 12. Exact boundaries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "grade"),
    [
        (("89.99", "90"), FAIR),
        (("90", "90"), GOOD),
        (("79.99", "80.00"), AVG),
        (("59.99", "60"), POOR),
    ],
)
def test_means_are_compared_unrounded(values: tuple[str, str], grade: Grade) -> None:
    assert grade_for(exact_mean([D(v) for v in values])) is grade  # type: ignore[arg-type]


def test_the_exact_composite_of_89_997_is_fairly_good() -> None:
    # 0.3·89.99 + 0.4·90 + 0.3·90 = 26.997 + 36 + 27 = 89.997 → 较好 (displayed 90.00)
    parts = {Part.SELF_EVALUATION: D("89.99"), Part.SATISFACTION: D(90), Part.INSPECTION: D(90)}
    assert exact_composite(parts) == D("89.997")
    assert grade_for(exact_composite(parts)) is FAIR  # type: ignore[arg-type]


def test_rules_composite_is_unrounded_too_and_grades_89_997_as_fairly_good() -> None:
    mixed = composite({"self_evaluation": D("89.99"), "satisfaction": D(90), "inspection": D(90)})
    assert grade_for(mixed.score) is FAIR  # type: ignore[arg-type]


# --- 4. Decisions checked ---------------------------------------------------------------------


def test_eight_of_thirteen_good_and_no_poor_and_a_vetoed_good_are_all_violations() -> None:
    villages = grade_township()[Pool.VILLAGE_COMMUNITY]
    decisions = {i: GOOD for i in range(1, 9)} | {12: AVG, 13: AVG}
    found = check_decisions(villages, decisions, vetoed={2})
    kinds = {v.kind: v for v in found}
    assert set(kinds) == {
        ViolationKind.TOO_MANY_GOOD,
        ViolationKind.TOO_FEW_POOR,
        ViolationKind.GOOD_DESPITE_VETO,
    }
    too_many = kinds[ViolationKind.TOO_MANY_GOOD]
    assert (too_many.limit, too_many.actual, too_many.org_ids) == (2, 8, tuple(range(1, 9)))
    assert (kinds[ViolationKind.TOO_FEW_POOR].limit, kinds[ViolationKind.TOO_FEW_POOR].actual) == (
        2,
        0,
    )
    assert kinds[ViolationKind.GOOD_DESPITE_VETO].org_ids == (2,)


def test_confirming_the_proposals_breaks_nothing() -> None:
    villages = grade_township()[Pool.VILLAGE_COMMUNITY]
    decisions = {b.org_id: b.grade for b in villages.branches}
    assert check_decisions(villages, decisions, vetoed={2}) == []  # type: ignore[arg-type]


def test_grading_a_branch_whose_participation_is_not_met_is_a_violation() -> None:
    pool = propose_pool(
        Pool.TWO_NEW, [volunteers_facts(deadline_passed=True)], superior_scoring=False
    )
    found = check_decisions(pool, {7: FAIR})
    assert [v.kind for v in found] == [ViolationKind.PARTICIPATION_NOT_MET]


def test_deciding_on_an_incomplete_pool_is_flagged() -> None:
    pool = propose_pool(Pool.VILLAGE_COMMUNITY, [facts(1, V, "95"), facts(2, V, None)])
    kinds = [v.kind for v in check_decisions(pool, {1: GOOD, 2: AVG})]
    assert kinds == [ViolationKind.INCOMPLETE, ViolationKind.POOL_INCOMPLETE]


def test_an_exception_needs_a_reason_and_a_second_organizer() -> None:
    villages = grade_township()[Pool.VILLAGE_COMMUNITY]
    decisions = {4: GOOD}  # 南湖村 89.995 → the committee wants 好: three 好 of 13
    (violation,) = check_decisions(villages, decisions, vetoed={2})
    assert violation.kind is ViolationKind.TOO_MANY_GOOD and violation.org_ids == (1, 3, 4)
    with pytest.raises(ValueError):
        request_exception(violation, " ", requested_by=900)
    asked = request_exception(violation, "县里同意南湖村为示范点", requested_by=900)
    assert unresolved([violation], [asked]) == [violation]
    with pytest.raises(ValueError):
        confirm_exception(asked, confirmed_by=900)
    confirmed = confirm_exception(asked, confirmed_by=901)
    assert confirmed.confirmed and unresolved([violation], [confirmed]) == []
    # The exception was for exactly that distribution: another 好 needs another one.
    (wider,) = check_decisions(villages, {4: GOOD, 5: GOOD}, vetoed={2})
    assert unresolved([wider], [confirmed]) == [wider]
    assert isinstance(confirmed, DecisionException)


def test_a_pool_is_ready_to_report_when_complete_decided_and_without_open_violations() -> None:
    villages = grade_township()[Pool.VILLAGE_COMMUNITY]
    everyone = [b.org_id for b in villages.branches]
    assert ready_to_report(villages, everyone[:-1], []) == ["undecided"]
    assert ready_to_report(villages, everyone, []) == []
    (violation,) = check_decisions(villages, {4: GOOD}, vetoed={2})
    assert ready_to_report(villages, everyone, [violation]) == ["violations"]
    partial = propose_pool(Pool.VILLAGE_COMMUNITY, [facts(1, V, "95"), facts(2, V, None)])
    assert ready_to_report(partial, [1], []) == ["pool_incomplete"]


def test_unlock_needs_a_reason_and_only_before_the_report() -> None:
    assert Unlock(org_id=4, reason="评分录入有误", person_id=900).reason == "评分录入有误"
    with pytest.raises(ValueError):
        Unlock(org_id=4, reason="", person_id=900)
    assert may_unlock(ReviewState.DECIDED) and may_unlock(ReviewState.RETURNED)
    assert not any(
        may_unlock(s) for s in (ReviewState.REPORTED, ReviewState.APPROVED, ReviewState.FINAL)
    )


# --- 8. Review by the county ------------------------------------------------------------------

ORG, COUNTY = {Role.ORGANIZER.value}, {GradingRole.COUNTY_REVIEWER.value}


def test_the_full_path_from_decided_to_final_with_one_return() -> None:
    state = ReviewState.DECIDED
    path = [
        (ReviewAction.REPORT, ORG, None, ReviewState.REPORTED),
        (ReviewAction.RETURN, COUNTY, "柳湾村得分依据不足", ReviewState.RETURNED),
        (ReviewAction.REDECIDE, ORG, "补充材料后重新评定", ReviewState.DECIDED),
        (ReviewAction.REPORT, ORG, None, ReviewState.REPORTED),
        (ReviewAction.APPROVE, COUNTY, None, ReviewState.APPROVED),
        (ReviewAction.FINALIZE, ORG, None, ReviewState.FINAL),
    ]
    for action, roles, reason, expected in path:
        step = review_step(state, action, person_id=1, roles=roles, reason=reason)
        assert step.after is expected
        state = step.after
    assert state is ReviewState.FINAL


@pytest.mark.parametrize(
    ("state", "action", "roles", "reason", "code"),
    [
        (ReviewState.DECIDED, ReviewAction.APPROVE, COUNTY, None, "not_allowed_now"),
        (ReviewState.REPORTED, ReviewAction.APPROVE, ORG, None, "wrong_role"),
        (ReviewState.REPORTED, ReviewAction.RETURN, COUNTY, " ", "reason_required"),
        (ReviewState.DECIDED, ReviewAction.REPORT, COUNTY, None, "wrong_role"),
        (ReviewState.REPORTED, ReviewAction.FINALIZE, ORG, None, "not_allowed_now"),
        (ReviewState.FINAL, ReviewAction.REDECIDE, ORG, "x", "not_allowed_now"),
    ],
)
def test_review_steps_out_of_order_or_by_the_wrong_role_are_refused(
    state: ReviewState, action: ReviewAction, roles: set[str], reason: str | None, code: str
) -> None:
    with pytest.raises(ReviewError) as refused:
        review_step(state, action, person_id=1, roles=roles, reason=reason)
    assert refused.value.code == code


# --- 9. The announced tally is a record -------------------------------------------------------


def test_the_announced_tally_is_frozen_and_its_digest_changes_with_any_number() -> None:
    at = datetime(2027, 3, 16, 7, 30, tzinfo=UTC)
    record = AnnouncedTally(1, 3, at, 6, {"members": 6}, D("100.00"), {"satisfaction": D(1)})
    later = AnnouncedTally(1, 3, at, 7, {"members": 7}, D("94.29"), {"satisfaction": D(1)})
    assert record.digest() != later.digest()
    assert (
        record.digest()
        == AnnouncedTally(1, 3, at, 6, {"members": 6}, D("100.00"), {"satisfaction": D(1)}).digest()
    )
    with pytest.raises(AttributeError):
        record.ballots = 7  # type: ignore[misc]


def test_the_digest_is_the_same_however_a_database_spells_the_same_record() -> None:
    """SQLite hands back 72.0 and a naive UTC time where PostgreSQL gives 72.00 and +00:00;
    a signature must sign the record, not the engine's spelling of it."""
    aware = datetime(2027, 3, 16, 7, 30, tzinfo=UTC)
    rates = {"satisfaction": D("0.8"), "awareness": D("1")}
    stored = AnnouncedTally(1, 3, aware, 5, {"members": 5}, D("72.00"), rates)
    rates_read = {"satisfaction": D("0.800"), "awareness": D("1.0000")}
    naive = aware.replace(tzinfo=None)
    read_back = AnnouncedTally(1, 3, naive, 5, {"members": 5}, D("72.0"), rates_read)
    assert stored.digest() == read_back.digest()
    changed = AnnouncedTally(1, 3, aware, 5, {"members": 5}, D("72.01"), rates)
    assert stored.digest() != changed.digest()


def test_only_the_group_leader_signs_as_leader_and_two_people_must_sign() -> None:
    assert not may_sign(Signer.WORK_GROUP_LEADER, {Role.INSPECTOR.value})
    assert may_sign(
        Signer.WORK_GROUP_LEADER, {Role.INSPECTOR.value, GradingRole.WORK_GROUP_LEADER.value}
    )
    assert may_sign(Signer.SECRETARY, {Role.SECRETARY.value})
    assert not fully_signed({Signer.SECRETARY: 5})
    assert not fully_signed({Signer.SECRETARY: 5, Signer.WORK_GROUP_LEADER: 5})
    assert fully_signed({Signer.SECRETARY: 5, Signer.WORK_GROUP_LEADER: 6})


# --- 7. Quarterly re-grading of 两新 ----------------------------------------------------------


def test_movement_between_grades() -> None:
    assert movement(AVG, FAIR) is Movement.UP
    assert movement(GOOD, POOR) is Movement.DOWN
    assert movement(FAIR, FAIR) is Movement.SAME
    assert movement(None, AVG) is Movement.FIRST


def test_a_quarterly_sample_regrades_some_and_carries_the_rest_forward() -> None:
    previous = {14: GOOD, 15: FAIR, 16: FAIR, 17: AVG, 18: POOR}
    rows = {r.org_id: r for r in regrade(previous, sample={15, 18}, decided={15: GOOD, 18: AVG})}
    assert (rows[15].current, rows[15].movement) == (GOOD, Movement.UP)
    assert (rows[18].current, rows[18].movement) == (AVG, Movement.UP)
    assert (rows[14].current, rows[14].sampled, rows[14].movement) == (GOOD, False, Movement.SAME)
    pending = regrade(previous, sample={16}, decided={})
    assert next(r for r in pending if r.org_id == 16).current is None
    with pytest.raises(ValueError):
        regrade(previous, sample={15}, decided={16: GOOD})
    assert quarter_of(date(2027, 5, 1)) == (2027, 2)


# --- 10. 整改台账 -----------------------------------------------------------------------------


def test_two_or_three_key_problems_per_branch() -> None:
    assert [key_problems_check(n) for n in (1, 2, 3, 4)] == ["too_few", None, None, "too_many"]


def test_the_township_closes_an_item_after_checking_never_the_branch() -> None:
    at = datetime(2027, 5, 1, tzinfo=UTC)
    with pytest.raises(ReviewError) as refused:
        close_item(1, person_id=5, roles={Role.SECRETARY.value}, note="已整改", closed_at=at)
    assert refused.value.code == "township_only"
    with pytest.raises(ReviewError):
        close_item(1, person_id=900, roles={Role.ORGANIZER.value}, note=" ", closed_at=at)
    closure = close_item(
        1, person_id=900, roles={Role.ORGANIZER.value}, note="现场查看台账", closed_at=at
    )
    assert closure.note == "现场查看台账"


# --- The same stories through ``ceping demo`` (pinned for the wiring phase) -----------------


@pytest.fixture(scope="module")
def demo_lines(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The lines ``ceping demo`` prints for a fresh SQLite file."""
    import io
    from contextlib import redirect_stdout

    from bot.cli import main
    from storage.settings import settings

    path = tmp_path_factory.mktemp("grading-demo") / "demo.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path.parent)
        for name in ("CEPING_BOT_TOKEN", "CEPING_BOT_USERNAME", "CEPING_LOCALE"):
            patch.delenv(name, raising=False)
        patch.setenv("CEPING_DATABASE_URL", "sqlite:///unused.db")
        settings.cache_clear()
        output = io.StringIO()
        with redirect_stdout(output):
            assert main(["demo", "--database", f"sqlite:///{path}"]) == 0
    settings.cache_clear()
    return output.getvalue().splitlines()


def test_the_demo_shows_the_volunteer_association_as_participation_not_met(
    demo_lines: list[str],
) -> None:
    # 3 of 16 members and 0 of 12 staff at the deadline (seed 000 二.2): no grade.
    (row,) = [line for line in demo_lines if line.startswith("董浜镇志愿者协会")]
    assert "参与面未达标" in row
    assert "较好" not in row


def test_the_demo_ranks_each_pool_on_one_named_basis(demo_lines: list[str]) -> None:
    # Today the footnote says 得分 is the committee score where scored, else the composite.
    assert not any("未评分时为综合分" in line for line in demo_lines)
