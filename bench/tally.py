"""How long a live tally takes on a county-sized round, beside the raw-SQL floor (a figure).

Builds 1,000 branches and 50,000 satisfaction respondents (with their anonymous counters),
plus three self-evaluations, two inspections and one superior scoring per branch, with
bulk inserts (then the per-branch summaries, as the folds and submissions would have kept
them); then times, median of several runs each:

* the floor: the minimal raw SQL a tally cannot do without — participation per branch and
  audience, the counters summed per branch, named totals per branch and instrument, ballots
  per branch — fetched and nothing else;
* the full tally (every branch with its pool's proposal: /tally, /rank, /grades), × floor;
* the one-branch tally of a secretary or an inspector (their branch's rows only);
* the export's tally (counts per option and per-indicator means for every branch).

    .venv/bin/python -m bench.tally                      # a temporary SQLite file
    .venv/bin/python -m bench.tally --database postgresql+psycopg://postgres@127.0.0.1:5432/bench
    .venv/bin/python -m bench.tally --keep /tmp/county.db            # build once, keep the file
    .venv/bin/python -m bench.tally --keep /tmp/county.db --reuse    # time it again, no build

The database must be empty (it is migrated to head first), unless ``--reuse``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select, text
from sqlmodel import Session

from bot import collector
from storage import participation, summary, tally_memo
from storage.db import make_engine, upgrade
from storage.models import (
    Answer,
    Assignment,
    Organization,
    Person,
    Response,
    Round,
    RoundInstrument,
    SatisfactionBallots,
    SatisfactionTally,
)
from storage.tallies import round_tally
from surveys.instruments import get_instrument

CHUNK = 5_000
INSTRUMENTS = ("self_evaluation", "satisfaction", "inspection_village", "superior_scoring")


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


def _bulk(session: Session, model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows in chunks with one executemany each."""
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(_table(model)), list(rows[start : start + CHUNK]))


def _ids(session: Session, model: Any, column: str, values: Iterable[Any]) -> dict[Any, int]:
    """Ids of rows just inserted, by a unique column."""
    wanted = set(values)
    table = _table(model)
    rows = session.execute(select(table.c[column], table.c.id)).all()
    return {value: row_id for value, row_id in rows if value in wanted}


def build_county(engine: Engine, *, branches: int, respondents: int, seed: int = 7) -> int:
    """A county-sized open round; returns its id."""
    rng = random.Random(seed)
    with Session(engine) as session:
        if session.execute(select(func.count()).select_from(_table(Organization))).scalar():
            raise SystemExit("the database is not empty")
        round_id = _round(session)
        org_ids = _organizations(session, branches)
        _satisfaction(session, rng, round_id, org_ids, respondents)
        _named_responses(session, rng, round_id, org_ids)
        summary.rebuild(session, round_id=round_id)  # what the folds and submissions keep
        session.commit()
    if engine.dialect.name == "postgresql":
        # What autovacuum would do soon after a bulk load: give the planner its statistics.
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    return round_id


def _round(session: Session) -> int:
    session.execute(
        insert(_table(Round)), [{"name": "全县2027年度", "status": "open", "options": {}}]
    )
    round_id = session.execute(select(_table(Round).c.id)).scalar_one()
    phases = {"self_evaluation": "self_evaluation", "satisfaction": "satisfaction"}
    phases |= {"inspection_village": "inspection", "superior_scoring": "superior_scoring"}
    _bulk(
        session,
        RoundInstrument,
        [
            {"round_id": round_id, "instrument_id": i, "version": 1, "phase": phases[i]}
            for i in INSTRUMENTS
        ],
    )
    return int(round_id)


def _organizations(session: Session, branches: int) -> list[int]:
    towns = [f"第{n}镇党委" for n in range(20)]
    _bulk(session, Organization, [{"name": n, "category": "committee"} for n in towns])
    town_ids = _ids(session, Organization, "name", towns)
    names = [f"第{n // 50}镇第{n % 50}村党支部" for n in range(branches)]
    _bulk(
        session,
        Organization,
        [
            {
                "name": name,
                "category": "village",
                "parent_id": town_ids[towns[n // 50 % 20]],
                "members": 40,
                "representatives": 15,
            }
            for n, name in enumerate(names)
        ],
    )
    return list(_ids(session, Organization, "name", names).values())


def _people(
    session: Session, org_ids: Sequence[int], count: int, prefix: str
) -> list[tuple[int, int]]:
    """count people spread over the branches: (person id, org id)."""
    phones = [f"{prefix}{n:08d}" for n in range(count)]
    rows = [
        {
            "name": f"人员{n}",
            "phone": phone,
            "org_id": org_ids[n % len(org_ids)],
            "anonymous": False,
        }
        for n, phone in enumerate(phones)
    ]
    _bulk(session, Person, rows)
    ids = _ids(session, Person, "phone", phones)
    return [(ids[row["phone"]], row["org_id"]) for row in rows]


def _satisfaction(
    session: Session, rng: random.Random, round_id: int, org_ids: Sequence[int], respondents: int
) -> None:
    people = _people(session, org_ids, respondents, "150")
    answered = {org_id: 0 for org_id in org_ids}
    assignments = []
    for n, (person_id, org_id) in enumerate(people):
        done = rng.random() < 0.8
        answered[org_id] += done
        assignments.append(
            {
                "round_id": round_id,
                "person_id": person_id,
                "org_id": org_id,
                "instrument_id": "satisfaction",
                "audience": "members" if n % 3 else "masses",
                "status": "submitted" if done else "pending",
            }
        )
    _bulk(session, Assignment, assignments)
    instrument = get_instrument("satisfaction")
    tallies = []
    for org_id, ballots in answered.items():
        for item in instrument.items:
            if item.kind != "choice":
                continue
            left = ballots
            for index, option in enumerate(item.options):
                count = left if index == len(item.options) - 1 else rng.randint(0, left)
                left -= count
                tallies.append(
                    {
                        "round_id": round_id,
                        "org_id": org_id,
                        "item_id": item.id,
                        "option_id": option.id,
                        "count": count,
                    }
                )
    _bulk(session, SatisfactionTally, tallies)
    _bulk(
        session,
        SatisfactionBallots,
        [{"round_id": round_id, "org_id": o, "ballots": b} for o, b in answered.items()],
    )


def _named_responses(
    session: Session, rng: random.Random, round_id: int, org_ids: Sequence[int]
) -> None:
    """Three self-evaluations, two inspections and one superior scoring per branch."""
    plan = [("self_evaluation", "committee")] * 3 + [("inspection_village", "inspectors")] * 2
    plan += [("superior_scoring", "organizers")]
    scorers = _people(session, org_ids, len(org_ids) * len(plan), "160")
    by_org: dict[int, list[int]] = {}
    for person_id, org_id in scorers:
        by_org.setdefault(org_id, []).append(person_id)
    assignments = [
        {
            "round_id": round_id,
            "person_id": person_id,
            "org_id": org_id,
            "instrument_id": instrument_id,
            "audience": audience,
            "status": "submitted",
        }
        for org_id, people in by_org.items()
        for person_id, (instrument_id, audience) in zip(people, plan, strict=True)
    ]
    _bulk(session, Assignment, assignments)
    table = _table(Assignment)
    rows = session.execute(
        select(table.c.id, table.c.person_id, table.c.org_id, table.c.instrument_id).where(
            table.c.instrument_id != "satisfaction"
        )
    ).all()
    responses, answers_by_assignment = [], {}
    for assignment_id, person_id, org_id, instrument_id in rows:
        answers = _answers(rng, instrument_id)
        answers_by_assignment[assignment_id] = answers
        responses.append(
            {
                "assignment_id": assignment_id,
                "round_id": round_id,
                "org_id": org_id,
                "person_id": person_id,
                "instrument_id": instrument_id,
                "instrument_version": 1,
                "total": sum((a["score"] for a in answers), Decimal(0)),
            }
        )
    _bulk(session, Response, responses)
    response_ids = _ids(session, Response, "assignment_id", answers_by_assignment)
    _bulk(
        session,
        Answer,
        [
            {**answer, "response_id": response_ids[assignment_id]}
            for assignment_id, answers in answers_by_assignment.items()
            for answer in answers
        ],
    )


def _answers(rng: random.Random, instrument_id: str) -> list[dict[str, Any]]:
    instrument = get_instrument(instrument_id)
    answers = []
    for section in instrument.sections:
        for item in section.items:
            if item.max_points is None:
                continue
            lost = (
                Decimal(rng.randint(0, int(item.max_points))) if rng.random() < 0.3 else Decimal(0)
            )
            answers.append(
                {
                    "section_id": section.id,
                    "item_id": item.id,
                    "points": item.max_points - lost if item.kind == "points" else None,
                    "deduction": lost if item.kind == "deduction" else None,
                    "reason": "材料不全" if lost and item.kind == "deduction" else None,
                    "score": item.max_points - lost,
                }
            )
    return answers


RUNS = 9

FLOOR = (
    "SELECT org_id, audience, COUNT(*), SUM(CASE WHEN status = 'submitted' THEN 1 ELSE 0 END)"
    " FROM assignment WHERE round_id = :r GROUP BY org_id, audience",
    "SELECT org_id, SUM(count) FROM satisfaction_tally WHERE round_id = :r GROUP BY org_id",
    "SELECT org_id, instrument_id, SUM(total), COUNT(*) FROM response"
    " WHERE round_id = :r AND total IS NOT NULL GROUP BY org_id, instrument_id",
    "SELECT org_id, ballots FROM satisfaction_ballots WHERE round_id = :r",
)


def _once(engine: Engine, work: Any, cpu: list[float] | None = None) -> float:
    """Milliseconds of one call of work(session), in a fresh session (wall clock).

    With ``cpu``, also appends this process's CPU milliseconds of the call: what a loaded
    machine distorts least (the database server's time is not in it, so it is no ratio).
    """
    with Session(engine) as session:
        start, start_cpu = time.perf_counter(), time.process_time()
        work(session)
        wall = (time.perf_counter() - start) * 1000
        if cpu is not None:
            cpu.append((time.process_time() - start_cpu) * 1000)
        return wall


def _median(values: Sequence[float]) -> float:
    return sorted(values)[len(values) // 2]


def _floor(session: Session, round_id: int) -> None:
    connection = session.connection()
    for statement in FLOOR:
        connection.execute(text(statement), {"r": round_id}).all()


def _change_one_branch(engine: Engine, round_id: int, rng: random.Random) -> None:
    """What happens between two tallies of a live round: one branch's counts move.

    One more ballot folded into a branch's summary (as storage.ballots' fold does) and one
    more submitted assignment (as a submission does); every other branch stays as it was.
    """
    with Session(engine) as session:
        connection = session.connection()
        org_id = connection.execute(
            text(
                "SELECT org_id FROM satisfaction_ballots WHERE round_id = :r"
                " ORDER BY org_id LIMIT 1 OFFSET :n"
            ),
            {"r": round_id, "n": rng.randrange(1_000)},
        ).scalar_one()
        connection.execute(
            text(
                "UPDATE satisfaction_ballots SET ballots = ballots + 1, satisfied = satisfied + 1,"
                " satisfaction_answers = satisfaction_answers + 1"
                " WHERE round_id = :r AND org_id = :o"
            ),
            {"r": round_id, "o": org_id},
        )
        connection.execute(
            text(
                "UPDATE assignment SET status = 'submitted' WHERE id = (SELECT MIN(id)"
                " FROM assignment WHERE round_id = :r AND org_id = :o AND status = 'pending')"
            ),
            {"r": round_id, "o": org_id},
        )
        session.commit()


def _full(session: Session, round_id: int) -> None:
    round_tally(session, round_id=round_id, details=False)


def _cold(session: Session, round_id: int) -> None:
    with tally_memo.aside():  # as the first tally after the bot started
        participation.forget_coverage()
        _full(session, round_id)


def _measure(engine: Engine, round_id: int, one: int) -> dict[str, list[float]]:
    """Milliseconds per run of the floor and of each tally, interleaved run by run.

    Interleaved so that a machine shared with other work loads floor and tally alike;
    the ratio is taken run by run. Before each run one branch changes, as in a live
    round, so ``full`` is the tally an organizer meets then (``repeat`` asks again with
    nothing changed; ``cold`` is the tally with no memo, which the bot takes itself right
    after it starts: bot/warm.py).
    """
    rng = random.Random(12)
    work = {
        "floor": lambda s: _floor(s, round_id),
        "full": lambda s: _full(s, round_id),
        "repeat": lambda s: _full(s, round_id),
        "cold": lambda s: _cold(s, round_id),
        "one": lambda s: round_tally(s, round_id=round_id, org_ids=[one], proposals=False),
        "one_pool": lambda s: round_tally(s, round_id=round_id, org_ids=[one]),
    }
    for job in work.values():  # warm up: first statements compile, caches fill
        _once(engine, job)
    times: dict[str, list[float]] = {name: [] for name in work}
    cpu: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(RUNS):
        _change_one_branch(engine, round_id, rng)
        for name, job in work.items():
            times[name].append(_once(engine, job, cpu[name]))
    times |= {f"{name}_cpu": values for name, values in cpu.items()}
    export = lambda s: round_tally(s, round_id=round_id, distribution=True)  # noqa: E731
    times["export"] = [_once(engine, export) for _ in range(3)]
    return times


def _ratios(times: dict[str, list[float]], name: str) -> list[float]:
    return [t / floor for t, floor in zip(times[name], times["floor"], strict=True)]


def report(engine: Engine, round_id: int, one: int) -> None:
    """Print each figure beside the floor (medians; the ratio per run, then its median)."""
    times = _measure(engine, round_id, one)
    ms = {name: _median(values) for name, values in times.items()}
    print(f"{engine.dialect.name}: medians of {RUNS} interleaved runs")
    print(f"  floor (raw SQL, 4 queries): {ms['floor']:.0f} ms (CPU {ms['floor_cpu']:.0f} ms)")
    for name, label, goal in (
        ("full", "full tally, one branch changed since the last (live round)", "goal ≤ 1.5"),
        ("repeat", "full tally again, nothing changed", "goal ≤ 1.5"),
        # No user meets this one: the bot takes it itself right after it starts.
        ("cold", "full tally with no memo (bot/warm.py, at start)", "off any user's path"),
    ):
        ratios = _ratios(times, name)
        print(
            f"  {label}: {ms[name]:.0f} ms (CPU {ms[name + '_cpu']:.0f} ms)"
            f" = {_median(ratios):.2f} × floor ({goal});"
            f" per run: {' '.join(f'{r:.2f}' for r in ratios)}"
        )
    print(
        f"  one-branch tally (secretary, inspector): {ms['one']:.1f} ms"
        f" (CPU {ms['one_cpu']:.1f} ms; goal < 10)"
    )
    print(
        f"  one-branch tally with its pool's proposal (organizer): {ms['one_pool']:.0f} ms"
        f" (CPU {ms['one_pool_cpu']:.0f} ms)"
    )
    print(f"  export tally (counts and per-indicator means, median of 3): {ms['export']:.0f} ms")


def _built_round(engine: Engine) -> int:
    """The round an earlier run built (``--reuse``)."""
    with Session(engine) as session:
        return int(session.execute(select(func.max(_table(Round).c.id))).scalar_one())


def _county(engine: Engine, args: argparse.Namespace) -> int:
    """The county round: built now, or the one built by an earlier run with ``--reuse``."""
    if args.reuse:
        return _built_round(engine)
    upgrade(engine)
    started = time.perf_counter()
    round_id = build_county(engine, branches=args.branches, respondents=args.respondents)
    print(
        f"{engine.dialect.name}: built {args.branches} branches, {args.respondents} "
        f"respondents in {time.perf_counter() - started:.1f} s"
    )
    return round_id


def main(argv: Sequence[str] | None = None) -> None:
    """Build the county round (or reuse one built before) and print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", help="an empty database URL (default: a temporary SQLite file)"
    )
    parser.add_argument("--keep", help="build into this SQLite file and keep it")
    parser.add_argument(
        "--reuse", action="store_true", help="the database (or --keep file) is built: time only"
    )
    parser.add_argument("--branches", type=int, default=1_000)
    parser.add_argument("--respondents", type=int, default=50_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = args.keep or Path(folder) / "county.db"
        engine = make_engine(args.database or f"sqlite:///{path}")
        round_id = _county(engine, args)
        with Session(engine) as session:
            one = session.execute(
                select(func.min(_table(Organization).c.id)).where(
                    _table(Organization).c.category == "village"
                )
            ).scalar_one()
        collector.settle()  # as `ceping run` does once its Application is built
        report(engine, round_id, one)
        engine.dispose()


if __name__ == "__main__":
    main()
