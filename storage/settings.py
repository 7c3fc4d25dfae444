"""Settings read from the environment and `.env` (prefix ``CEPING_``)."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BOT_API_URL = "https://api.telegram.org/bot"
SUPPORTED_LOCALES = ("zh_CN", "en")


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line for the user."""


class Settings(BaseSettings):
    """Everything ceping reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="CEPING_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # SecretStr keeps the token out of reprs, tracebacks and logs.
    bot_token: SecretStr | None = None
    # Seals satisfaction answers at rest (storage.sealing); derived from the token when unset.
    ballot_key: SecretStr | None = None
    database_url: str = "sqlite:///ceping.db"
    bot_api_url: str = DEFAULT_BOT_API_URL
    bot_file_url: str | None = None
    timezone: str = "Asia/Shanghai"
    locale: str = "zh_CN"
    bot_username: str | None = Field(default=None, description="Used for deep links when offline")
    invitation_days: int = Field(default=30, ge=1)
    # Connections to the Bot API at most (PTB's default is 256). httpx scans its pool on
    # every request, so at a meeting's burst a pool grown to a hundred connections cost
    # more CPU per tap than the survey itself (issue 12); above this, requests wait their
    # turn (up to bot.app.API_POOL_WAIT seconds) instead of opening another connection.
    api_connections: int = Field(default=32, ge=1, le=256)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("locale")
    @classmethod
    def _supported_locale(cls, value: str) -> str:
        if value not in SUPPORTED_LOCALES:
            raise ValueError(f"must be one of {', '.join(SUPPORTED_LOCALES)}")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value

    @property
    def zone(self) -> ZoneInfo:
        """The local time zone for showing and reading times."""
        return ZoneInfo(self.timezone)

    def require_token(self) -> str:
        """The bot token, or a SettingsError when it is not configured."""
        if self.bot_token is None or not self.bot_token.get_secret_value().strip():
            raise SettingsError("CEPING_BOT_TOKEN is not set")
        return self.bot_token.get_secret_value().strip()


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning validation errors into one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "CEPING_" + str(first["loc"][0]).upper() if first["loc"] else "CEPING_*"
        # Never echo the input: it could be the token.
        raise SettingsError(f"{name}: {first['msg']}") from None


@cache
def settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
