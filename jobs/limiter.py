"""Telegram's limits for bulk messages: about 30 per second overall and 1 per second per chat.

Applied to the outbox only; the bot's replies to someone who is talking to it are not
throttled. Token buckets with an injectable clock, so tests move time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]

GLOBAL_PER_SECOND = 30.0
PER_CHAT_PER_SECOND = 1.0


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``capacity`` saved up; taking may borrow ahead."""

    rate: float
    capacity: float
    clock: Clock = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity < 1:
            raise ValueError("a bucket needs a positive rate and room for one token")
        self.tokens = self.capacity
        self.updated = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self) -> float:
        """Reserve one token; the seconds to wait before using it (0 when one is at hand)."""
        self._refill()
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def idle(self) -> bool:
        """Whether the bucket is full again (it can be forgotten)."""
        self._refill()
        return self.tokens >= self.capacity


class OutboxLimiter:
    """One global bucket and one bucket per chat; :meth:`reserve` says how long to wait."""

    def __init__(
        self,
        *,
        per_second: float = GLOBAL_PER_SECOND,
        per_chat_per_second: float = PER_CHAT_PER_SECOND,
        clock: Clock = time.monotonic,
    ) -> None:
        self.clock = clock
        self.per_chat_per_second = per_chat_per_second
        self._global = TokenBucket(per_second, per_second, clock)
        self._chats: dict[int, TokenBucket] = {}

    def reserve(self, chat_id: int) -> float:
        """Reserve a send to this chat; the seconds to wait before sending it."""
        bucket = self._chats.get(chat_id)
        if bucket is None:
            self._forget_idle_chats()
            bucket = self._chats[chat_id] = TokenBucket(self.per_chat_per_second, 1, self.clock)
        return max(self._global.take(), bucket.take())

    def _forget_idle_chats(self) -> None:
        """Drop full per-chat buckets now and then, so memory stays bounded."""
        if len(self._chats) < 1024:
            return
        for chat_id in [c for c, bucket in self._chats.items() if bucket.idle()]:
            del self._chats[chat_id]
