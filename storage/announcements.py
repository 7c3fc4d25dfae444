"""The announced tally as a record (docs/rules.md §10): /publish freezes it, two people sign it.

``announce`` stores the branch's tally as it stands (``surveys.review.AnnouncedTally``) and
refreshes it on a later /publish only while nobody has signed; once a signature exists the
record stays as signed, whatever ballots come later. ``sign_announcement`` checks that the
signer signs the stored record (its digest) and holds the role (``may_sign``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, select

from storage import audit
from storage.grading import GradingError, sign
from storage.models import Announcement, SignOff
from storage.tallies import BranchTally
from surveys.categories import Audience
from surveys.review import AnnouncedTally, Signer, may_sign

_AUDIENCES = (Audience.MEMBERS, Audience.MASSES)


def snapshot(branch: BranchTally, *, round_id: int, now: datetime) -> AnnouncedTally:
    """The tally to announce now; below the threshold the numbers stay hidden (§7)."""
    hidden = branch.small_group or branch.rates is None
    rates = None
    if not hidden and branch.rates is not None:
        found = {
            "satisfaction": branch.rates.satisfaction,
            "awareness": branch.rates.awareness,
            "participation": branch.rates.participation,
        }
        rates = {key: value for key, value in found.items() if value is not None}
    return AnnouncedTally(
        round_id=round_id,
        org_id=branch.org_id,
        announced_at=now,
        ballots=branch.ballots,
        respondents={
            audience.value: branch.coverage[audience].respondents
            for audience in _AUDIENCES
            if audience in branch.coverage
        },
        satisfaction_score=None if hidden else branch.satisfaction_score,
        rates=rates,
        distribution=None if hidden else branch.distribution,
    )


def _record(tally: AnnouncedTally) -> dict[str, Any]:
    return {
        "announced_at": tally.announced_at.isoformat(),
        "ballots": tally.ballots,
        "respondents": dict(tally.respondents),
        "satisfaction_score": None
        if tally.satisfaction_score is None
        else str(tally.satisfaction_score),
        "rates": None if tally.rates is None else {k: str(v) for k, v in tally.rates.items()},
        "distribution": None
        if tally.distribution is None
        else {q: dict(o) for q, o in tally.distribution.items()},
    }


def _tally(row: Announcement) -> AnnouncedTally:
    record = row.record
    score = record.get("satisfaction_score")
    rates = record.get("rates")
    return AnnouncedTally(
        round_id=row.round_id,
        org_id=row.org_id,
        announced_at=datetime.fromisoformat(record["announced_at"]),
        ballots=int(record["ballots"]),
        respondents={k: int(v) for k, v in record["respondents"].items()},
        satisfaction_score=None if score is None else Decimal(score),
        rates=None if rates is None else {k: Decimal(v) for k, v in rates.items()},
        distribution=record.get("distribution"),
    )


def _signed(session: Session, round_id: int, org_id: int) -> bool:
    found = session.exec(
        select(SignOff.id).where(SignOff.round_id == round_id, SignOff.org_id == org_id)
    ).first()
    return found is not None


def announced(session: Session, *, round_id: int, org_id: int) -> AnnouncedTally | None:
    """The stored announced tally of a branch, or None before its first /publish."""
    row = session.get(Announcement, (round_id, org_id))
    return None if row is None else _tally(row)


def announce(
    session: Session, *, tally: AnnouncedTally, person_id: int | None, now: datetime
) -> AnnouncedTally:
    """Store the tally as announced; once signed, the stored record is kept and returned."""
    row = session.get(Announcement, (tally.round_id, tally.org_id))
    if row is not None and _signed(session, tally.round_id, tally.org_id):
        return _tally(row)
    digest = tally.digest()
    if (
        row is not None
        and replace(tally, announced_at=_tally(row).announced_at).digest() == row.digest
    ):
        return _tally(row)  # nothing changed since it was announced
    row = row or Announcement(round_id=tally.round_id, org_id=tally.org_id, digest="")
    row.digest, row.record = digest, _record(tally)
    row.announced_by, row.announced_at = person_id, now
    session.add(row)
    audit.record(
        session=session,
        action="publish.announce",
        at=now,
        actor_person_id=person_id,
        target=f"org:{tally.org_id}",
        detail={"round_id": tally.round_id, "digest": digest, "ballots": tally.ballots},
    )
    session.flush()
    return _tally(row)


def sign_announcement(
    session: Session,
    *,
    round_id: int,
    org_id: int,
    signer: Signer,
    digest: str,
    person_id: int,
    roles: set[str],
    now: datetime,
) -> AnnouncedTally:
    """Sign the stored announced tally, named by the digest the signer was shown."""
    if not may_sign(signer, roles):
        raise GradingError("not_signer")
    row = session.get(Announcement, (round_id, org_id))
    if row is None:
        raise GradingError("not_announced")
    if row.digest != digest:  # the record changed since it was shown: show it again
        raise GradingError("announcement_changed")
    sign(session, round_id=round_id, org_id=org_id, role=signer.value, person_id=person_id, now=now)
    audit.record(
        session=session,
        action="publish.sign",
        at=now,
        actor_person_id=person_id,
        target=f"org:{org_id}",
        detail={"round_id": round_id, "role": signer.value, "digest": row.digest},
    )
    session.flush()
    return _tally(row)


def announcement_digest(session: Session, *, round_id: int, org_id: int) -> str | None:
    """The digest of the stored record (what a signature signs), or None."""
    row = session.get(Announcement, (round_id, org_id))
    return None if row is None else row.digest
