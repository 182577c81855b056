"""The deny modal's submission: the decision is recorded before the modal closes."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.errors import DomainError
from bot.service_layer import services
from bot.slack import forms
from bot.slack.actions.decisions import origin_of
from bot.slack.common import guarded
from bot.slack.deps import Deps
from bot.slack.home import publish_home
from bot.slack.parser import REQUEST_ID


def register(app: AsyncApp, deps: Deps) -> None:
    @guarded
    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        user = body["user"]["id"]
        origin = origin_of(view.get("private_metadata", ""))
        request_id = str(origin.get("request_id", ""))
        if not REQUEST_ID.match(request_id):
            await ack(response_action="errors", errors={"reason": "This form does not belong to an access request."})
            return
        reason = ((view["state"]["values"].get("reason") or {}).get("value") or {}).get("value")
        try:
            result = await services.deny(uow=deps.uow(), request_id=request_id, approver_id=user, reason=reason)
        except DomainError as refused:
            await ack(response_action="errors", errors={"reason": refused.message[:150]})
            return
        await ack()
        if origin.get("from") == "home":
            await publish_home(client, deps, user, notice=result.message)

    app.view(forms.DENY_REASON)(on_submit)
