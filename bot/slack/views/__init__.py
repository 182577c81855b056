"""Modal submissions: the request form and the deny reason."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.deps import Deps
from bot.slack.views import deny_reason, request_form


def register(app: AsyncApp, deps: Deps) -> None:
    request_form.register(app, deps)
    deny_reason.register(app, deps)
