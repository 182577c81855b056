"""Events: App Home."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.deps import Deps
from bot.slack.events import app_home


def register(app: AsyncApp, deps: Deps) -> None:
    app_home.register(app, deps)
