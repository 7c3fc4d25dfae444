"""A demo township with a round and realistic answers, for trying ceping without Telegram.

Everything goes through the real code paths: the roster through ``apply_roster``, the
round through ``create_round``/``open_round``, every answer through
``storage.responses.save_answer`` and ``submit`` — so the anonymity design holds in the demo
as it does live. Deterministic: the same seed gives the same township and answers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from storage.db import Engine, Session, transaction
from storage.grading import record_veto
from storage.lookups import (
    branch_assignments,
    first_person_with_role,
    organization_count,
    organization_ids_by_name,
    person_count,
    round_pins,
)
from storage.models import Assignment
from storage.responses import instrument_for, save_answer, submit
from storage.roster import apply_roster
from storage.rounds import create_round, open_round
from surveys.categories import Category, Phase, Role
from surveys.instruments import AnswerValue, Instrument, Item
from surveys.roster import OrgRow, PersonRow, Roster

TOWNSHIP = "董浜镇党委"
ROUND_NAME = "2027年度基层党组织分类定级"
DEFAULT_SEED = 2027
REVIEWER = "县委组织部审核员"
REVIEWER_PHONE = "13900009999"

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"  # noqa: E501
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥建国建华志强海燕国平春梅文军德明小红金凤永明桂兰淑珍晓东卫东丽娟宏伟雪梅建军玉兰国庆"  # noqa: E501
_DEDUCTION_REASONS = (
    "台账资料不完整",
    "会议记录缺少签到",
    "公开栏内容未及时更新",
    "党员发展程序材料缺失",
    "三会一课记录不规范",
    "阵地标识不统一",
    "后备干部培养措施不具体",
    "整改措施未落实到人",
)
_SUGGESTIONS = (
    "希望多开展走访群众活动",
    "党务公开可以更及时一些",
    "建议组织更多志愿服务",
    "希望支部多关心困难党员",
    "建议加强年轻党员培养",
)


@dataclass(frozen=True)
class BranchPlan:
    """One demo branch: its roster counts and how well it does this year."""

    name: str
    category: Category
    members: int
    representatives: int
    staff: int
    congress: bool
    quality: float  # 0–1: drives satisfaction, self-evaluation and inspection
    turnout: float  # share of members and masses who answer the survey
    superior: bool = False  # the township committee has already scored it
    veto: bool = False
    survey_cap: int | None = None  # at most this many survey answers (a branch hard to reach)


# Thirteen villages and communities, two enterprises, a social organization, a school and a
# hospital; qualities spread so every grade appears, turnouts so some branches fall short.
PLANS: tuple[BranchPlan, ...] = (
    BranchPlan("董浜村党总支", Category.VILLAGE, 86, 38, 0, False, 0.97, 0.92, superior=True),
    BranchPlan("杜桥村党总支", Category.VILLAGE, 72, 34, 0, False, 0.95, 0.90, superior=True),
    BranchPlan("观智村党总支", Category.VILLAGE, 64, 30, 0, False, 0.96, 0.88, True, veto=True),
    BranchPlan("北港村党支部", Category.VILLAGE, 55, 28, 0, False, 0.88, 0.90, superior=True),
    BranchPlan("东盾村党支部", Category.VILLAGE, 48, 26, 0, False, 0.80, 0.92, superior=True),
    BranchPlan("新民村党支部", Category.VILLAGE, 41, 22, 0, False, 0.72, 0.95, superior=True),
    BranchPlan("智林村党支部", Category.VILLAGE, 38, 24, 0, False, 0.62, 0.92),
    BranchPlan("永安村党支部", Category.VILLAGE, 35, 20, 0, False, 0.50, 0.95, superior=True),
    BranchPlan("红沙村党支部", Category.VILLAGE, 30, 18, 0, False, 0.30, 0.95),
    BranchPlan("里睦村党支部", Category.VILLAGE, 27, 16, 0, False, 0.15, 0.97, superior=True),
    BranchPlan("董浜社区党总支", Category.COMMUNITY, 68, 36, 0, False, 0.90, 0.90, True),
    BranchPlan("徐市社区党支部", Category.COMMUNITY, 44, 25, 0, False, 0.68, 0.92, True),
    BranchPlan("黄石社区党支部", Category.COMMUNITY, 32, 19, 0, False, 0.45, 0.92, True),
    BranchPlan("华丰纺织有限公司党支部", Category.ENTERPRISE, 26, 18, 120, True, 0.78, 0.95, True),
    BranchPlan("恒信机械厂党支部", Category.ENTERPRISE, 21, 0, 46, False, 0.40, 0.95, True),
    BranchPlan(
        "董浜镇志愿者协会党支部",
        Category.SOCIAL,
        20,
        0,
        24,
        False,
        0.70,
        0.5,
        superior=True,
        survey_cap=3,
    ),
    BranchPlan("董浜中心小学党支部", Category.INSTITUTION, 33, 15, 64, True, 0.92, 0.95, True),
    BranchPlan("董浜镇卫生院党支部", Category.INSTITUTION, 29, 0, 58, False, 0.74, 0.93, True),
)
# The round started ROUND_AGE ago: the survey's deadline has passed (参与面 is judged, the
# volunteer association's 3 of 16 members and 0 of 12 staff are 参与面未达标), while the
# committee is still scoring (智林村 and 红沙村 are not scored yet, so the 村(社区) pool is
# provisional: no quota pushes anyone down there, docs/rules.md §5.2).
ROUND_AGE = timedelta(days=20)


@dataclass(frozen=True)
class DemoTownship:
    """What the demo built."""

    round_id: int
    township: str
    branches: int
    people: int


class DemoError(Exception):
    """The demo cannot be built here; ``code`` is a catalog key under ``cli.demo.``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


# --- Roster ----------------------------------------------------------------------------------


class _Names:
    """Chinese names and unique mobile numbers, deterministic from the seed."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.count = 0

    def person(self) -> tuple[str, str]:
        """A name and the next phone number."""
        self.count += 1
        given = "".join(self.rng.choice(_GIVEN) for _ in range(self.rng.choice((1, 2, 2))))
        return self.rng.choice(_SURNAMES) + given, f"139{self.count:08d}"


def _masses_on_roster(plan: BranchPlan) -> int:
    """How many masses answer for the branch: representatives, or all staff without them."""
    if plan.category in (Category.VILLAGE, Category.COMMUNITY) or plan.congress:
        return plan.representatives
    return plan.staff


def _branch_people(plan: BranchPlan, names: _Names, row: int) -> list[PersonRow]:
    """Members (the first is secretary, the next few the committee) and mass representatives."""
    people: list[PersonRow] = []
    committee = 3 if plan.members < 40 else 5
    for index in range(plan.members):
        roles = (Role.MEMBER,)
        if index == 0:
            roles = (Role.SECRETARY, Role.COMMITTEE, Role.MEMBER)
        elif index < committee:
            roles = (Role.COMMITTEE, Role.MEMBER)
        name, phone = names.person()
        people.append(PersonRow(name, phone, plan.name, roles, row + len(people)))
    for _ in range(_masses_on_roster(plan)):
        name, phone = names.person()
        people.append(PersonRow(name, phone, plan.name, (Role.MASS,), row + len(people)))
    return people


def demo_roster(rng: random.Random) -> Roster:
    """The township committee, its eighteen branches and everyone on their rosters."""
    orgs = [OrgRow(TOWNSHIP, Category.COMMITTEE, 0, 0, 0, False, None, 2)]
    orgs += [
        OrgRow(p.name, p.category, p.members, p.representatives, p.staff, p.congress, TOWNSHIP, i)
        for i, p in enumerate(PLANS, start=3)
    ]
    names = _Names(rng)
    people: list[PersonRow] = []
    for plan in PLANS:
        people += _branch_people(plan, names, len(people) + 2)
    township_staff = ((Role.INSPECTOR,), (Role.INSPECTOR,), (Role.ORGANIZER,))
    for roles in township_staff:
        name, phone = names.person()
        people.append(PersonRow(name, phone, TOWNSHIP, roles, len(people) + 2))
    # 县委组织部's reviewer (docs/rules.md §9), named without the generator so the township's
    # random answers stay those of the seed.
    people.append(
        PersonRow(REVIEWER, REVIEWER_PHONE, TOWNSHIP, (Role.COUNTY_REVIEWER,), len(people) + 2)
    )
    return Roster(organizations=orgs, people=people)


# --- Answers ---------------------------------------------------------------------------------


def _choice(item: Item, quality: float, rng: random.Random) -> str:
    """Options are listed best first: the best with probability ``quality``, else a worse one."""
    options = item.options
    if rng.random() < quality or len(options) == 1:
        return options[0].id
    worse = options[1:]
    weights = [0.7, *([0.3 / (len(worse) - 1)] * (len(worse) - 1))] if len(worse) > 1 else [1.0]
    return rng.choices(worse, weights=weights)[0].id


def _on_step(amount: float, item: Item) -> Decimal:
    """An amount rounded down to the item's step and kept within 0..max_points."""
    assert item.max_points is not None
    step = item.step
    steps = int(Decimal(str(max(0.0, amount))) / step)
    return min(item.max_points, step * steps)


def _answer(item: Item, quality: float, rng: random.Random) -> AnswerValue | None:
    """A plausible answer from a branch of this quality; None leaves an optional item blank."""
    if item.kind == "choice":
        return AnswerValue(choice=_choice(item, quality, rng))
    assert item.kind in ("points", "deduction", "text")
    if item.kind == "points":
        assert item.max_points is not None
        share = min(1.0, max(0.0, quality + rng.uniform(-0.08, 0.05)))
        return AnswerValue(points=_on_step(float(item.max_points) * share, item))
    if item.kind == "deduction":
        assert item.max_points is not None
        if rng.random() > (1 - quality) * 1.1:
            return AnswerValue(deduction=Decimal(0))
        amount = _on_step(float(item.max_points) * rng.uniform(0.3, 0.9), item) or item.step
        return AnswerValue(deduction=amount, reason=rng.choice(_DEDUCTION_REASONS))
    if item.required:
        return AnswerValue(text=rng.choice(_DEDUCTION_REASONS))
    if rng.random() < 0.1:
        return AnswerValue(text=rng.choice(_SUGGESTIONS))
    return None


def _answer_assignment(
    session: Session, assignment: Assignment, quality: float, rng: random.Random, now: datetime
) -> None:
    """Fill in every item through save_answer, then submit — the bot's own path."""
    assert assignment.id is not None
    instrument: Instrument = instrument_for(session, assignment=assignment)
    draft = None
    for item in instrument.items:
        value = _answer(item, quality, rng)
        if value is not None:
            # Holding the draft keeps it in the session's (weak) identity map: no re-select.
            draft = save_answer(session, assignment_id=assignment.id, item_id=item.id, value=value)
    submit(session, assignment_id=assignment.id, now=now)
    del draft


def _quality_seen_by(instrument_id: str, quality: float) -> float:
    """How good the branch looks to whoever answers this instrument.

    Committees rate themselves generously (a weak branch still gives itself 70-odd); the
    township committee knows the branch all year, so its scores are sober but not brutal.
    """
    if instrument_id == "self_evaluation":
        return 0.72 + 0.26 * quality
    if instrument_id == "superior_scoring":
        return 0.45 + 0.55 * quality
    return quality


def _responds(assignment: Assignment, plan: BranchPlan, rng: random.Random) -> bool:
    """Whether this person answers: survey by turnout, the branch's committee nearly always."""
    if assignment.instrument_id == "satisfaction":
        return rng.random() < plan.turnout
    if assignment.instrument_id == "superior_scoring":
        return plan.superior
    if assignment.instrument_id == "self_evaluation":
        return rng.random() < 0.95
    return True


def _answer_round(
    engine: Engine, round_id: int, plans: dict[int, BranchPlan], rng: random.Random, now: datetime
) -> None:
    """Answers for every branch, one transaction per branch as a real meeting would commit."""
    for org_id, plan in plans.items():
        with transaction(engine) as session:
            # Kept referenced so every save_answer finds the pins in the identity map.
            pins = round_pins(session=session, round_id=round_id)
            assignments = branch_assignments(session=session, round_id=round_id, org_id=org_id)
            surveys = 0
            for assignment in assignments:
                if not _responds(assignment, plan, rng):
                    continue
                if assignment.instrument_id == "satisfaction":
                    surveys += 1
                    if plan.survey_cap is not None and surveys > plan.survey_cap:
                        continue
                quality = _quality_seen_by(assignment.instrument_id, plan.quality)
                _answer_assignment(session, assignment, quality, rng, now)
            del pins


# --- The whole demo --------------------------------------------------------------------------


def _deadlines(now: datetime) -> dict[Phase, datetime]:
    """Self-evaluation first, then the survey, the inspection and the committee's scoring."""
    days = {
        Phase.SELF_EVALUATION: 10,
        Phase.SATISFACTION: 14,
        Phase.INSPECTION: 18,
        Phase.SUPERIOR_SCORING: 21,
    }
    return {phase: now + timedelta(days=offset) for phase, offset in days.items()}


def build_demo(engine: Engine, *, now: datetime, seed: int = DEFAULT_SEED) -> DemoTownship:
    """Fill an empty, migrated database with the demo township, its round and answers.

    The round opened ``ROUND_AGE`` before ``now`` and everything was answered then, so at
    ``now`` the survey deadline has passed and only the committee's scoring is open.
    """
    rng = random.Random(seed)
    now = now - ROUND_AGE
    with transaction(engine) as session:
        if organization_count(session=session):
            raise DemoError("not_empty")
        apply_roster(session, demo_roster(rng), now=now)
        round_ = create_round(session, name=ROUND_NAME, deadlines=_deadlines(now), now=now)
        assert round_.id is not None
        open_round(session, round_id=round_.id, now=now)
        ids = organization_ids_by_name(session=session)
        plans = {ids[plan.name]: plan for plan in PLANS}
        organizer = first_person_with_role(session=session, role=Role.ORGANIZER.value)
        for org_id, plan in plans.items():
            if plan.veto:
                record_veto(
                    session,
                    round_id=round_.id,
                    org_id=org_id,
                    condition="不合格党员",
                    note="一名党员经民主评议被评为不合格党员",
                    person_id=organizer,
                    now=now,
                )
        people = person_count(session=session)
        round_id = round_.id
    _answer_round(engine, round_id, plans, rng, now + timedelta(days=1))
    return DemoTownship(round_id=round_id, township=TOWNSHIP, branches=len(PLANS), people=people)


@dataclass(frozen=True)
class DemoDecision:
    """The one branch the demo takes from proposal to a locked decision."""

    org_id: int
    name: str
    proposed: str
    final: str
    review_states: tuple[str, ...] = ()  # the county review, step by step (docs/rules.md §9)


def decide_one(engine: Engine, *, round_id: int, now: datetime) -> DemoDecision | None:
    """Lock the proposal of the first branch of a complete pool, as an organizer would.

    The decision goes through ``storage.grading.decide_grade`` (checked against its pool's
    quotas and vetoes, audited). Hook for the county review (docs/rules.md §9): the next
    steps — 上报, 审核, 正式确定 — continue from the returned branch.
    """
    from storage.grading import decide_grade
    from storage.tallies import round_tally

    with transaction(engine) as session:
        tally = round_tally(session, round_id=round_id, now=now)
        organizer = first_person_with_role(session=session, role=Role.ORGANIZER.value)
        for branch in tally.branches:
            if branch.proposal is None or branch.provisional:
                continue
            decision = decide_grade(
                session, round_id=round_id, org_id=branch.org_id, person_id=organizer, now=now
            )
            assert decision.final_grade is not None
            states = _through_review(session, round_id, branch.org_id, organizer, now)
            return DemoDecision(
                branch.org_id, branch.name, decision.proposed_grade, decision.final_grade, states
            )
    return None


def _through_review(
    session: Session, round_id: int, org_id: int, organizer: int | None, now: datetime
) -> tuple[str, ...]:
    """上报 by the organizer, 审核通过 by the county reviewer, 正式确定 by the organizer."""
    from storage.review import review
    from surveys.review import ReviewAction

    reviewer = first_person_with_role(session=session, role=Role.COUNTY_REVIEWER.value)
    if organizer is None or reviewer is None:
        return ()
    steps = (
        (ReviewAction.REPORT, organizer),
        (ReviewAction.APPROVE, reviewer),
        (ReviewAction.FINALIZE, organizer),
    )
    return tuple(
        review(
            session, round_id=round_id, org_id=org_id, action=action, person_id=person, now=now
        ).state.value
        for action, person in steps
    )

