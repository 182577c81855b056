"""Buttons: Approve, Deny (asks for a reason) and Cancel."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.slack.actions import decisions
from bot.slack.deps import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    decisions.register(app, deps)
