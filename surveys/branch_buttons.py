"""The secretary's two buttons about one branch: ``rp:wn:<org>`` and ``rp:wl:<org>``.

📋 生成微信群通知 (the WeChat notice) and 🔗 未登记人员邀请链接 (the invitation links of the
branch's unregistered people) are drawn by the bot's screens and by the reminders the jobs
enqueue, and decoded by the bot's report codec (``bot.report_callbacks``, whose
``BranchView`` takes these codes). They live here, below both, so ``jobs`` need not import
``bot``. Pure: no database, no Telegram.
"""

from __future__ import annotations

from enum import StrEnum

from surveys.start_links import MAX_CALLBACK_BYTES

NOTICE_CODE = "wn"
INVITES_CODE = "wl"


class BranchButton(StrEnum):
    """Which of the two buttons."""

    NOTICE = NOTICE_CODE
    INVITES = INVITES_CODE


def encode_branch_button(button: BranchButton, org_id: int) -> str:
    """The callback data of a secretary button about one branch."""
    if org_id < 1:
        raise ValueError(f"not an organization id: {org_id}")
    data = f"rp:{button.value}:{org_id}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:  # a bug, never user input
        raise ValueError(f"callback data longer than {MAX_CALLBACK_BYTES} bytes: {data!r}")
    return data
