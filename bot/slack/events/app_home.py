"""app_home_opened -> views.publish, once per Slack event id (Slack retries events)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.service_layer import services
from bot.slack.common import guarded
from bot.slack.deps import Deps
from bot.slack.home import publish_home


def register(app: AsyncApp, deps: Deps) -> None:
    @guarded
    async def on_home_opened(event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") != "home":
            return
        if not await services.first_delivery(uow=deps.uow(), event_id=str(body.get("event_id", ""))):
            return
        await publish_home(client, deps, event["user"])

    app.event("app_home_opened")(on_home_opened)
