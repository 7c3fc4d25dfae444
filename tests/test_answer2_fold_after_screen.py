"""A submission's fold runs after the person has their thanks screen, not before it.

The fold (storage.ballots) is a transaction of its own; it ran from the submitting
session's commit, so the 确认提交 tap's screen waited for it — at a meeting's end, when
every branch's box fills at once, for all of them queued on the write lock. It now runs
once the screen is shown, still inside the handler (the update is processed only after
it), and still touches no row that names a person.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from storage import ballots
from tests.test_anonymity import THRESHOLD, _answer, _seat_voters, _submit

if TYPE_CHECKING:
    from tests.bot_fixtures import BotHarness


def _folded_ballots(bot: BotHarness) -> int:
    with bot.engine.connect() as connection:
        counted = connection.execute(text("SELECT sum(ballots) FROM satisfaction_ballots"))
        return int(counted.scalar_one() or 0)


def _thanked(bot: BotHarness, chat_id: int) -> bool:
    """Whether the bot has shown this chat its thanks (the edit answered by the server)."""
    return any(
        record.method == "editMessageText"
        and record.result is not None
        and record.params.get("chat_id") == chat_id
        and "提交成功" in record.params.get("text", "")
        for record in bot.api.log
    )


async def test_the_fold_runs_after_the_thanks_screen_is_shown(
    bot: BotHarness, monkeypatch: Any
) -> None:
    voters = _seat_voters(bot, 2 * THRESHOLD)
    for voter in voters[:-1]:
        phone = bot.phone(voter.user_id)
        await _answer(phone, voter)
        await _submit(phone)
    assert _folded_ballots(bot) == 0  # fewer than twice the threshold wait in the box
    last = voters[-1]
    phone = bot.phone(last.user_id)
    await _answer(phone, last)
    shown_before_fold: list[bool] = []
    fold = ballots.fold_due

    def spy(*args: Any, **kwargs: Any) -> int:
        shown_before_fold.append(_thanked(bot, last.user_id))
        return fold(*args, **kwargs)

    monkeypatch.setattr(ballots, "fold_due", spy)
    await _submit(phone)  # returns once the update is processed: the fold included
    assert shown_before_fold == [True]
    assert _folded_ballots(bot) == 2 * THRESHOLD - THRESHOLD  # all but t of the box
