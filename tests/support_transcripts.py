"""The transcript harness: one phone's conversation written down step by step and compared
with a reviewable file under ``tests/transcripts/`` (issue 14).

Regenerate the files after a reviewed change of texts with::

    CEPING_UPDATE_TRANSCRIPTS=1 .venv/bin/pytest tests/test_transcripts*.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from surveys.i18n import t
from tests.fakebot import Phone, Reply
from tests.fakebot.phone import keyboard_texts, message_text

TRANSCRIPTS = Path(__file__).parent / "transcripts"
UPDATE = os.environ.get("CEPING_UPDATE_TRANSCRIPTS") == "1"
SHARE_PHONE = t("registration.share_phone_button")


class Transcript:
    """One phone's conversation, written down step by step."""

    def __init__(self, name: str, phone: Phone) -> None:
        self.name = name
        self.phone = phone
        self.blocks: list[str] = []

    async def send(self, text: str) -> Reply:
        """Send a text and write down what came back."""
        return self._record(f">>> send: {text}", await self.phone.send(text))

    async def tap(self, label: str) -> Reply:
        """Tap a button and write down what came back."""
        return self._record(f">>> tap: [{label}]", await self.phone.tap(label))

    async def share_phone(self) -> Reply:
        """Press the phone button of the reply keyboard."""
        reply = await self.phone.press_reply_button(SHARE_PHONE)
        return self._record(f">>> press: [{SHARE_PHONE}]", reply)

    def _record(self, step: str, reply: Reply) -> Reply:
        lines = [f"=== {len(self.blocks) + 1}", step]
        answer = reply.answer
        if answer and answer.get("text"):
            kind = "alert" if answer.get("show_alert") else "toast"
            lines.append(f"--- {kind}: {answer['text']}")
        for record in reply.records:
            if record.status != 200 or not isinstance(record.result, dict):
                continue
            if record.method in ("sendPhoto", "sendDocument"):  # the file itself is not text
                kind = "photo" if record.method == "sendPhoto" else "document"
                name = record.result.get("document", {}).get("file_name", "")
                lines.append(f"--- {kind}: {record.result.get('caption') or name}")
                continue
            if record.method not in ("sendMessage", "editMessageText", "editMessageReplyMarkup"):
                continue
            if record.method == "editMessageReplyMarkup":
                lines.append("--- buttons of an earlier message changed")
            else:
                kind = "message" if record.method == "sendMessage" else "edit"
                lines += [f"--- {kind}", message_text(record.result)]
            lines += [
                " ".join(f"[{label}]" for label in row) for row in keyboard_texts(record.result)
            ]
            lines += _reply_keyboard(record.params.get("reply_markup"))
        self.blocks.append("\n".join(lines))
        return reply

    def check(self) -> None:
        """Compare with the stored transcript (or store it when asked to update)."""
        text = "\n\n".join(self.blocks) + "\n"
        path = TRANSCRIPTS / f"{self.name}.txt"
        if UPDATE or not path.exists():
            TRANSCRIPTS.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            assert not os.environ.get("CI"), f"{path} was written; commit it"
        stored = path.read_text(encoding="utf-8")
        assert text == stored, (
            f"the {self.name} transcript changed; review the difference and regenerate with "
            "CEPING_UPDATE_TRANSCRIPTS=1"
        )


def _reply_keyboard(markup: Any) -> list[str]:
    """The reply keyboard a message sets under the input field, or takes away."""
    if not isinstance(markup, dict):
        return []
    if "keyboard" in markup:
        rows = markup["keyboard"]
        return [
            "⌨ " + " ".join(f"[{b['text'] if isinstance(b, dict) else b}]" for b in row)
            for row in rows
        ]
    if markup.get("remove_keyboard"):
        return ["⌨ (removed)"]
    return []
