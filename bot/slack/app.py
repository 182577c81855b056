"""Builds the Bolt AsyncApp: the Slack clients, the listeners of each surface, their dependencies, and the
outbox dispatcher."""

from __future__ import annotations

import logging
from datetime import timedelta

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
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
from bot.slack.dispatcher import Dispatcher


def _client_logger() -> logging.Logger:
    """The Slack clients' logger, its own level set to the one logging gives slack_sdk now. slack_sdk formats a
    debug line of every call and its whole response unless its logger's *own* level is above DEBUG (a logger's
    own level is NOTSET unless set): that was 3% of the bot's CPU with debug logging off."""
    logger = logging.getLogger("slack_sdk.web.async_base_client.bot")
    assert logger.parent is not None
    logger.setLevel(logger.parent.getEffectiveLevel())
    return logger


def slack_client(settings: Settings, *, retries: bool, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """The listeners' client retries by itself (rate limits, 5xx, dropped connections). The outbox's does not:
    it retries through the outbox, which knows how not to post a message twice."""
    assert settings.slack_bot_token is not None
    handlers = (
        [
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ]
        if retries
        else []
    )
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        logger=_client_logger(),
        base_url=settings.slack_api_url,
        # aiohttp takes fractions of a second; slack_sdk annotates the timeout as int
        timeout=settings.slack_timeout,  # type: ignore[arg-type]
        retry_handlers=handlers,
        session=session,  # one connection pool, kept alive, instead of a connection per call
    )


class CountingApp(AsyncApp):
    """Bolt's app, counting the requests waiting for their ack: meanwhile the outbox dispatcher starts fewer
    deliveries, so that the acks (which Slack wants within 3 s) get the event loop first."""

    counter: Dispatcher | None = None

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        if self.counter is None:
            return await super().async_dispatch(req)
        self.counter.awaiting_ack += 1
        try:
            return await super().async_dispatch(req)  # returns once the listener has acked
        finally:
            self.counter.awaiting_ack -= 1
            if not self.counter.awaiting_ack:
                self.counter.wake()


def build_app(
    settings: Settings, uow: UnitOfWorkFactory, session: aiohttp.ClientSession | None = None
) -> tuple[AsyncApp, Dispatcher]:
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    app = CountingApp(
        client=slack_client(settings, retries=True, session=session),
        signing_secret=secret,
        request_verification_enabled=not settings.socket_mode,
        logger=logging.getLogger("bot.bolt"),
    )
    dispatcher = Dispatcher(
        slack_client(settings, retries=False, session=session),
        uow,
        settings.notify_channel,
        lease=timedelta(seconds=settings.outbox_lease_seconds),
        max_attempts=settings.outbox_max_attempts,
        base_delay=settings.outbox_base_delay,
        max_delay=settings.outbox_max_delay,
    )

    app.counter = dispatcher
    deps = Deps(uow=uow, policy=settings.policy, admins=settings.admin_users, creating=dispatcher.creating)
    for surface in (commands, actions, views, events):
        surface.register(app, deps)
    return app, dispatcher
