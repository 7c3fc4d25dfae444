"""The garbage collector's and the GIL's settings for a long-running bot process (issue 12).

Why: a county tally makes about 100,000 short-lived objects. With CPython's default
thresholds (700, 10, 10) that is over a hundred young collections, and now and then a
full one that walks every object the process holds: about 150,000 after start-up
(modules, the classes of SQLAlchemy, pydantic and PTB), 50 to 150 ms on this machine, so
one tally in two or three took twice as long as the others (bench/tally.py showed it).

``settle`` runs once the Application is built. ``gc.freeze`` moves everything start-up
made out of every later collection (those objects live as long as the process anyway),
and a larger first threshold lets a tally or a burst of taps finish before the young
generation is walked more than a few times. Reference counting still frees nearly every
object at once; the collector only finds reference cycles, which are freed as before,
later. The cost is at most one first-generation's worth of cyclic garbage waiting, a few
MB against the 200 MB budget.

The GIL: the event loop's thread runs the taps, and a SQLite writer on another thread (a
fold, a tap that waits for a lock) must get the GIL back after each call into SQLite while
it holds the file's one write lock. With CPython's default switch interval of 5 ms, the busy
loop kept it that long each time, so a fold that takes 3 ms alone held the lock for 20 to 40
ms at a meeting's end, and every tap behind it waited. See ``SWITCH_INTERVAL``.
"""

from __future__ import annotations

import gc
import sys

FIRST_GENERATION = 7_000
"""Allocations (minus frees) of container objects between two young collections: ten times
CPython's 700. Measured on the county tally (bench.tally's round, 15 runs each, after the
freeze): 700 gave a cold tally of 48 ms, 7,000 39 ms, 50,000 45 ms; a larger young generation
also makes each of its collections, and so the pause a tap may meet, longer."""


SWITCH_INTERVAL = 0.0005
"""Seconds a thread may keep the GIL while another asks for it: a tenth of CPython's 5 ms.
Measured at the end of bench.meeting's latency run on SQLite (a meeting's last
confirmations, when every branch folds): see README, Speed."""


def settle() -> None:
    """Freeze what start-up made, collect the young generation less often, and let a thread
    that holds a write lock have the GIL back sooner."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()  # the start-up garbage goes first, so that it is not frozen with the rest
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(FIRST_GENERATION, middle, oldest)
