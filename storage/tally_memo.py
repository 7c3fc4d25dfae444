"""What the last county tally of a round computed, kept per branch beside the rows it came from.

Why: a county tally is about 1,000 branches of pure Python over a few grouped rows each,
several times the SQL it reads (issue 12), and between two tallies of a live round few
branches change. So each branch's scores, its proposal input and its ``BranchTally`` are
kept with the exact rows they were computed from, and each pool's proposal with the inputs
and round context it was proposed from. The next tally recomputes a branch only where its
rows differ, and a pool only where one of its branches' inputs or the context differs.

Nothing is invalidated by hand. The computation is pure, so a kept result is reused only
when everything it was computed from is equal to what was just read, and then it is what
a recomputation would give (tests/test_tally_memo.py holds the memo to a fresh tally
through a random round). The rows are read every time; only the arithmetic is saved.

One memo per process (each bot worker keeps its own), bounded: the latest tally of the
few most recent (round, options, flags) only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

KEPT_TALLIES = 4
"""Tallies kept per process: a county round's full tally, its export and an organizer's
branch view, plus one more round. About 4.5 MB each for 1,000 branches (tracemalloc)."""

Input = TypeVar("Input")
Result = TypeVar("Result")


@dataclass
class KeptBranch:
    """One branch: the rows read, what was computed from them, and how it was shown."""

    rows: tuple[Any, ...]
    scores: Any
    input: Any
    # (the pool's word on the branch, the BranchTally built with it): one tuple, set at
    # once, because two threads may tally the same round and must never pair them wrongly.
    view: tuple[tuple[Any, ...], Any] | None = None


@dataclass
class KeptPool(Generic[Input, Result]):
    """One pool's proposal and the context and branch inputs it was proposed from."""

    context: tuple[Any, ...]
    inputs: tuple[Input, ...]
    proposal: Result

    def still(self, context: tuple[Any, ...], inputs: Sequence[Input]) -> bool:
        """Whether proposing again from these would give the kept proposal (equal inputs)."""
        if context != self.context or len(inputs) != len(self.inputs):
            return False
        # Identity first: an input kept by the branch memo is the very same object.
        return all(a is b or a == b for a, b in zip(inputs, self.inputs, strict=True))


@dataclass
class Memo:
    """The last tally of one (round, options, flags): per branch and per pool."""

    branches: dict[int, KeptBranch] = field(default_factory=dict)
    pools: dict[Hashable, KeptPool[Any, Any]] = field(default_factory=dict)


_memos: OrderedDict[Hashable, Memo] = OrderedDict()
_lock = threading.Lock()  # tallies run in worker threads; the dict itself is shared


def last(key: Hashable) -> Memo:
    """The memo of the last tally with this key (empty the first time)."""
    with _lock:
        memo = _memos.get(key)
        if memo is not None:
            _memos.move_to_end(key)
        return memo if memo is not None else Memo()


def keep(key: Hashable, memo: Memo) -> None:
    """Keep this tally's memo as the last one for its key (dropping the oldest beyond the bound)."""
    with _lock:
        _memos[key] = memo
        _memos.move_to_end(key)
        while len(_memos) > KEPT_TALLIES:
            _memos.popitem(last=False)


@contextmanager
def aside() -> Iterator[None]:
    """Tally with an empty memo inside the block, then find the kept tallies back.

    How the tests compare a memoised tally with a fresh one without losing the memo.
    """
    global _memos
    with _lock:
        kept_before, _memos = _memos, OrderedDict()
    try:
        yield
    finally:
        with _lock:
            _memos = kept_before


def forget() -> None:
    """Drop every kept tally (tests compare a memoised tally with a fresh one)."""
    with _lock:
        _memos.clear()


def kept() -> int:
    """How many tallies are kept now (at most ``KEPT_TALLIES``)."""
    with _lock:
        return len(_memos)
