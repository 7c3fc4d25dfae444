"""The report buttons' callback data: typed taps with ids, round-tripped, forgeries refused."""

from __future__ import annotations

import pytest

from bot.report_callbacks import (
    MAX_CALLBACK_BYTES,
    BadReportCallback,
    BranchTap,
    BranchView,
    Capacity,
    CloseTap,
    ExportTap,
    Flag,
    FlagStep,
    FlagTap,
    OverrideTap,
    ReportTap,
    SignTap,
    VetoConditionTap,
    decode,
    encode,
)
from surveys.rules import Grade

BIG = 10**17  # the largest id shape the decoder accepts has 18 digits

TAPS: list[ReportTap] = [
    ExportTap(),
    *(BranchTap(view, 42) for view in BranchView),
    *(OverrideTap(7, grade) for grade in Grade),
    *(SignTap(BIG, capacity) for capacity in Capacity),
    CloseTap(3),
    *(FlagTap(flag, FlagStep.PAGE, 0) for flag in Flag),
    *(FlagTap(flag, step, BIG) for flag in Flag for step in FlagStep if step.value in "bsy"),
    FlagTap(Flag.VETO, FlagStep.CANCEL, 0),
    *(VetoConditionTap(BIG, number) for number in (1, 2, 3, 4)),
]


@pytest.mark.parametrize("tap", TAPS, ids=repr)
def test_every_tap_round_trips_and_fits_a_button(tap: ReportTap) -> None:
    data = encode(tap)
    assert data.startswith("rp:") and len(data.encode()) <= MAX_CALLBACK_BYTES
    assert decode(data) == tap


def test_the_wire_format_is_stable_for_buttons_already_sent() -> None:
    assert decode("rp:t:12") == BranchTap(BranchView.TALLY, 12)
    assert decode("rp:ra:12") == BranchTap(BranchView.LEDGER_ADD, 12)
    assert decode("rp:o:12:fairly_good") == OverrideTap(12, Grade.FAIRLY_GOOD)
    assert decode("rp:s:12:l") == SignTap(12, Capacity.WORK_GROUP_LEADER)
    assert Capacity.WORK_GROUP_LEADER.role == "work_group_leader"
    assert decode("rp:f:v:b:12") == FlagTap(Flag.VETO, FlagStep.BRANCH, 12)
    assert decode("rp:f:m:p:1") == FlagTap(Flag.MEMBERS_ONLY, FlagStep.PAGE, 1)
    assert decode("rp:fv:12:2") == VetoConditionTap(12, 2)


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "rp:",
        "rp:t",
        "rp:t:",
        "rp:t:0",
        "rp:t:-1",
        "rp:t:012",
        "rp:t:1:2",
        "rp:t:红星村",  # a name: taps carry ids only
        "rp:x:1",
        "rp:z:1",
        "rp:o:1",
        "rp:o:1:excellent",
        "rp:o:1:GOOD",
        "rp:s:1",
        "rp:s:1:x",
        "rp:k:abc",
        "rp:t:1 ",
        "rp:t:1234567890123456789",
        "a:1:0:0:c:0",
        "rp:fv:1:0",  # veto conditions are numbered 1–4 (surveys.vetoes)
        "rp:fv:1:5",
        "rp:fv:1:12",
        "rp:f:v:b:0",  # a branch is never 0
        "rp:f:v:y:0",
        "rp:f:v:n:1",  # cancel carries no branch
        "rp:f:v:p:1000",
        "rp:f:x:b:1",
        "rp:f:v:z:1",
        "rp:f:v:b:红星村",
        "rp:t:" + "1" * 80,
    ],
)
def test_forged_or_garbled_data_is_refused(data: str | None) -> None:
    with pytest.raises(BadReportCallback):
        decode(data)
