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
from bot.slack.parser import REQUEST_ID


def register(app: AsyncApp, deps: Deps) -> None:
    @guarded
    async def on_approve(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond) -> None:
        user = body["user"]["id"]
        try:
            request_id = request_id_of(body)
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
        user = body["user"]["id"]
        try:
            request_id = request_id_of(body)
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
        user = body["user"]["id"]
        try:
            request_id = request_id_of(body)
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


def request_id_of(body: dict[str, Any]) -> str:
    """The request a button names; a value that is not one of our ids is refused before anything else."""
    value = str(body["actions"][0].get("value", ""))
    if not REQUEST_ID.match(value):
        raise DomainError("This button does not belong to an access request.")
    return value


def origin_of(private_metadata: str) -> dict[str, Any]:
    try:
        loaded = json.loads(private_metadata or "{}")
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
