"""The meeting screen's own settings (prefix ``CEPING_``), kept apart from the bot's."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ScreenSettings(BaseSettings):
    """Where the screen is served and how long a projector link lasts."""

    model_config = SettingsConfigDict(
        env_prefix="CEPING_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # The https base URL people's phones reach the screen at (Telegram opens Mini Apps over
    # https only). Unset: no screen, `ceping run` runs the bot as before.
    public_url: str | None = None
    screen_listen: str = "127.0.0.1"
    screen_port: int = Field(default=8080, ge=1, le=65535)  # polling mode; webhook mode shares
    screen_hours: float = Field(default=3.0, gt=0, le=24)  # a projector link's life

    @property
    def base_url(self) -> str | None:
        """The public URL without a trailing slash, or None."""
        return self.public_url.rstrip("/") if self.public_url else None


@cache
def screen_settings() -> ScreenSettings:
    """The process-wide screen settings, read once."""
    return ScreenSettings()
