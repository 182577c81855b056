"""The ``/access-request`` slash command."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.commands import access_request
from bot.slack.deps import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    access_request.register(app, deps)
