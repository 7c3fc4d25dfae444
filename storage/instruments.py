"""The instrument version a round pinned, read once for reports, the workbook and answering.

A round pins each instrument's version when it is created (``RoundInstrument``); a newer
bundled file must not change how an older round is reported or exported.
"""

from __future__ import annotations

from sqlmodel import Session

from storage.models import RoundInstrument
from surveys.instruments import Instrument, get_instrument


def pinned_instrument(*, session: Session, round_id: int, instrument_id: str) -> Instrument:
    """The version of ``instrument_id`` the round pinned; the newest bundled one if unpinned.

    A round created before its instrument was pinned (none today) falls back to the newest
    bundled version, as every reader did before.
    """
    pin = session.get(RoundInstrument, (round_id, instrument_id))
    return get_instrument(instrument_id, pin.version if pin is not None else None)
