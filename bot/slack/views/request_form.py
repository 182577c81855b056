"""The request form's submission: problems shown inline on their fields."""

from __future__ import annotations

import asyncio
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.errors import DomainError, InvalidRequest
from bot.service_layer import services
from bot.service_layer.results import RequestView
from bot.slack import forms
from bot.slack.commands.access_request import ACK_BUDGET
from bot.slack.common import guarded
from bot.slack.deps import Deps
from bot.slack.directory import resolve_approvers
from bot.slack.parser import parse_duration


def register(app: AsyncApp, deps: Deps) -> None:
    @guarded
    async def on_submit(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        user = body["user"]["id"]
        values = view["state"]["values"]

        def entered(block: str) -> Any:
            element: dict[str, Any] = next(iter((values.get(block) or {}).values()), {})
            return element.get("value") or element.get("selected_user")

        approver_ids = [entered(f"approver_{i}") for i in range(1, deps.policy.approvers + 1)]
        missing = {f"approver_{i}": "Choose a person." for i, a in enumerate(approver_ids, start=1) if not a}
        duration_text = (entered("duration") or "").strip()
        duration = parse_duration(duration_text) if duration_text else None
        if duration_text and duration is None:
            missing["duration"] = "Write a duration like 30m, 4h or 2d."
        if missing:
            await ack(response_action="errors", errors=missing)
            return

        async def store() -> RequestView:
            with deps.creating():
                approvers = await resolve_approvers(
                    client,
                    approver_ids,
                    requester_id=user,
                    required=deps.policy.approvers,
                    recent=deps.recent_approvers,
                )
                return await services.create_request(
                    uow=deps.uow(),
                    requester_id=user,
                    requester_name=body["user"].get("name", ""),
                    resource=entered("resource") or "",
                    justification=entered("justification") or "",
                    approvers=approvers,
                    duration_minutes=duration,
                    policy=deps.policy,
                    idempotency_key=view["id"],  # a double-clicked submit makes one request
                    confirm_by_message=True,  # a form has no reply of its own: confirm by DM
                )

        task = asyncio.ensure_future(store())
        try:
            await asyncio.wait_for(asyncio.shield(task), ACK_BUDGET)
        except InvalidRequest as refused:
            block = forms.FIELD_BLOCKS.get(refused.field, refused.field)
            await ack(response_action="errors", errors={block: refused.message[:150]})
            return
        except DomainError as refused:
            await ack(response_action="errors", errors={"resource": refused.message[:150]})
            return
        except TimeoutError:
            await ack()
            try:
                await task
            except DomainError as refused:
                await client.chat_postMessage(channel=user, text=f":warning: {refused.message}")
                return
        else:
            await ack()

    app.view(forms.NEW_REQUEST)(on_submit)
