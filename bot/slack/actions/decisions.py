"""A click decides as the clicking user's Slack id, checked against the stored approvers."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.errors import DomainError
from bot.domain.model import DecisionOutcome
from bot.domain.values import Verdict
from bot.service_layer import services
from bot.slack import blocks as b
from bot.slack import forms
from bot.slack.common import guarded
from bot.slack.deps import Deps
from bot.slack.home import from_home, publish_home, tell


def register(app: AsyncApp, deps: Deps) -> None:
    @guarded
    async def on_approve(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond) -> None:
        user, request_id = body["user"]["id"], body["actions"][0]["value"]
        try:
            result = await services.approve(uow=deps.uow(), request_id=request_id, approver_id=user)
        except DomainError as refused:
            await ack()
            await tell(body, client, respond, deps, f":warning: {refused.message}")
            return
        await ack()  # only now: an acked decision is a recorded one
        if result.outcome is DecisionOutcome.ALREADY_RECORDED:
            await tell(body, client, respond, deps, result.message)
        elif from_home(body):
            await publish_home(client, deps, user, notice=result.message)

    @guarded
    async def on_deny(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond) -> None:
        await ack()
        user, request_id = body["user"]["id"], body["actions"][0]["value"]
        try:
            view = await services.check_decision(
                uow=deps.uow(), request_id=request_id, approver_id=user, verdict=Verdict.DENY
            )
        except DomainError as refused:
            await tell(body, client, respond, deps, f":warning: {refused.message}")
            return
        origin = {"from": "home"} if from_home(body) else {"from": "message"}
        await client.views_open(trigger_id=body["trigger_id"], view=forms.deny_modal(view, origin))

    @guarded
    async def on_cancel(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond) -> None:
        user, request_id = body["user"]["id"], body["actions"][0]["value"]
        try:
            await services.cancel(uow=deps.uow(), request_id=request_id, user_id=user)
        except DomainError as refused:
            await ack()
            await tell(body, client, respond, deps, f":warning: {refused.message}")
            return
        await ack()
        await tell(body, client, respond, deps, f"Request {request_id} is cancelled.")

    app.action(b.APPROVE)(on_approve)
    app.action(b.DENY)(on_deny)
    app.action(b.CANCEL)(on_cancel)


def origin_of(private_metadata: str) -> dict[str, Any]:
    try:
        loaded = json.loads(private_metadata or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
