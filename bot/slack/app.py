"""Builds the Bolt AsyncApp: the Slack client, the listeners of each surface, their dependencies."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.service_layer.unit_of_work import UnitOfWorkFactory
from bot.slack import actions, commands, events, views
from bot.slack.deps import Deps
from bot.slack.notifier import Notifier

SLACK_TIMEOUT = 10  # seconds per Web API call


def slack_client(settings: Settings) -> AsyncWebClient:
    assert settings.slack_bot_token is not None
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=SLACK_TIMEOUT,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_app(settings: Settings, uow: UnitOfWorkFactory) -> tuple[AsyncApp, Deps]:
    client = slack_client(settings)
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    app = AsyncApp(
        client=client,
        signing_secret=secret,
        request_verification_enabled=not settings.socket_mode,
        logger=logging.getLogger("bot.bolt"),
    )
    deps = Deps(
        uow=uow,
        notifier=Notifier(client, uow, settings.notify_channel),
        policy=settings.policy,
        admins=settings.admin_users,
    )
    for surface in (commands, actions, views, events):
        surface.register(app, deps)
    return app, deps
