"""Settings from the environment and ``.env`` (pydantic-settings)."""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.domain.values import Policy

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./access_requests.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


def database_url() -> str:
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


class MissingSettings(Exception):
    """Settings the bot cannot start without; the message names them."""


def invalid_settings(error: ValidationError) -> str:
    """One line naming each setting that is wrong (by its environment variable) and why."""
    problems = []
    for e in error.errors():
        message = str(e["msg"]).removeprefix("Value error, ")
        names = ".".join(str(part) for part in e["loc"]).upper()
        problems.append(f"{names}: {message}" if names else message)
    return "Invalid settings: " + "; ".join(problems) + " (see README, Configuration)."


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    port: int = 3000
    host: str = "0.0.0.0"  # noqa: S104  (Slack must reach the HTTP endpoint)
    database_url: str = DEFAULT_DATABASE_URL
    notify_channel: str | None = None
    admin_users: Annotated[frozenset[str], NoDecode] = frozenset()
    required_approvers: int = Field(default=2, ge=1, le=10)
    max_resource_length: int = Field(default=200, ge=1, le=2000)
    max_justification_length: int = Field(default=2000, ge=1, le=2900)
    max_open_requests: int = Field(default=10, ge=1)
    log_level: str = "INFO"
    request_ttl_hours: float = Field(default=72.0, ge=0)  # pending requests expire after this; 0: never
    expire_check_seconds: float = Field(default=60.0, gt=0)
    slack_timeout: float = Field(default=10.0, gt=0)  # seconds per Web API call
    outbox_lease_seconds: float = Field(default=30.0, gt=0)  # how long a dispatcher holds a claimed notice
    outbox_max_attempts: int = Field(default=8, ge=1)  # then the notice is a dead letter
    outbox_base_delay: float = Field(default=0.5, gt=0)  # first retry after about this many seconds, then doubling
    outbox_max_delay: float = Field(default=300.0, gt=0)  # the doubling stops here

    @field_validator("admin_users", mode="before")
    @classmethod
    def _split_users(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(v.strip() for v in value.split(",") if v.strip())
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("notify_channel", "slack_app_token", "slack_bot_token", "slack_signing_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _lease_outlasts_a_call(self) -> Settings:
        # A notice waits at most half its lease in memory before its call starts, and the call is answered within
        # SLACK_TIMEOUT: only then may another process take the notice over (and look for what the call posted).
        if self.slack_timeout > self.outbox_lease_seconds / 2:
            raise ValueError(
                f"OUTBOX_LEASE_SECONDS ({self.outbox_lease_seconds:g}) must be at least twice SLACK_TIMEOUT "
                f"({self.slack_timeout:g}): a notice must not be taken over while its call to Slack may be in flight"
            )
        return self

    @model_validator(mode="after")
    def _database_default(self) -> Settings:
        if not self.database_url.strip():
            self.database_url = DEFAULT_DATABASE_URL
        return self

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def policy(self) -> Policy:
        return Policy(
            approvers=self.required_approvers,
            max_resource_length=self.max_resource_length,
            max_justification_length=self.max_justification_length,
            max_open_per_requester=self.max_open_requests,
        )

    def require_slack(self) -> None:
        missing = []
        if self.slack_bot_token is None:
            missing.append("SLACK_BOT_TOKEN")
        if self.slack_signing_secret is None and not self.socket_mode:
            missing.append("SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode)")
        if missing:
            raise MissingSettings(
                f"Missing setting: {', '.join(missing)}. Set it in the environment or .env; "
                "see README.md, 'Configuration'."
            )
