"""One tap's transaction, alone: lock and load the assignment, save, commit — CPU per step.

    .venv/bin/python -m bench.answer_step [--steps 1500] [--database postgresql+psycopg://…]

No Telegram, no other process: the figure is this process's CPU (``time.process_time``)
per step, so it moves far less with the machine's other load than bench.meeting's
per-tap figures, whose no-op baseline swings with it. Steps alternate an answer and a move
on one draft, as a member's taps do. A figure, not a test.
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy import Engine
from sqlmodel import select

from bench.meeting import FIRST_USER, scratch_database, seed
from bot.answer_state import _pinned
from storage import answering as store
from storage.db import make_engine, transaction, upgrade
from storage.models import Assignment
from storage.responses import Held, save_answer, update_draft_view
from surveys.instruments import AnswerValue


def step(engine: Engine, assignment_id: int, number: int) -> None:
    """What a tap does in its transaction (answer on odd steps, a move on even ones)."""
    with transaction(engine) as session:
        row = store.load_step(session=session, assignment_id=assignment_id)
        assert row is not None
        instrument, _ = _pinned(row.assignment, row.pin)
        held = Held(row.assignment, instrument, row.draft)
        if number % 2:
            value = AnswerValue(choice="satisfied")
            save_answer(session, assignment_id=assignment_id, item_id="q1", value=value, held=held)
        else:
            update_draft_view(session, assignment_id=assignment_id, position=0, held=held)


def main(argv: list[str] | None = None) -> None:
    """Entry point: print the CPU per step."""
    parser = argparse.ArgumentParser(prog="python -m bench.answer_step", description=__doc__)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--database", default=None, help="PostgreSQL server URL")
    args = parser.parse_args(argv)
    with scratch_database(args.database) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            seed(engine, 5, 1, FIRST_USER)
            with transaction(engine) as session:
                assignment_id = session.exec(select(Assignment.id)).first()
            assert assignment_id is not None
            for number in range(200):  # warm: compiled statements, pool, prepared statements
                step(engine, assignment_id, number)
            start = time.process_time()
            for number in range(args.steps):
                step(engine, assignment_id, number)
            spent = time.process_time() - start
            backend = engine.dialect.name
            print(f"answer step on {backend}: {1000 * spent / args.steps:.3f} ms CPU per step")
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
