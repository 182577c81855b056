"""Posts and updates every Slack message about a request, so all copies converge on its stored state."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.values import Status
from bot.service_layer import services
from bot.service_layer.results import RequestView
from bot.service_layer.unit_of_work import UnitOfWorkFactory
from bot.slack import blocks as b
from bot.slack import text as t

log = logging.getLogger(__name__)
ERRORS_FOR_PEOPLE = {
    "channel_not_found": "the channel does not exist or is private",
    "not_in_channel": "the bot is not in that channel: invite it with /invite",
    "user_not_found": "that person is not in this workspace",
    "user_disabled": "their account is deactivated",
    "cannot_dm_bot": "it is an app, which cannot receive messages",
    "invalid_blocks": "Slack refused the message's layout",
}


class Notifier:
    def __init__(self, client: AsyncWebClient, uow: UnitOfWorkFactory, notify_channel: str | None) -> None:
        self.client, self.uow, self.notify_channel = client, uow, notify_channel
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, request_id: str) -> asyncio.Lock:
        lock = self._locks.get(request_id)
        if lock is None:
            lock = self._locks[request_id] = asyncio.Lock()
        return lock

    async def request_created(self, view: RequestView) -> list[str]:
        """DM each approver and post to the channel; returns what went wrong, in words for the requester."""
        async with self._lock(view.id):
            problems = await asyncio.gather(
                *(
                    self._post(
                        view,
                        f"dm:{a.user_id}",
                        a.user_id,
                        b.approver_message(view, a.user_id),
                        f"I could not message {t.user(a.user_id)}",
                    )
                    for a in view.approvers
                ),
                self._post_channel(view),
            )
        return [p for p in problems if p]

    async def request_changed(self, request_id: str) -> None:
        """Bring every message about the request to its current state; post what is owed once."""
        async with self._lock(request_id):
            view = await services.get(uow=self.uow(), request_id=request_id)
            refs = await services.messages_for(uow=self.uow(), request_id=request_id)
            work: list[Awaitable[Any]] = []
            for approver in view.approvers:
                ref = refs.get(f"dm:{approver.user_id}")
                if ref:
                    work.append(self._update(view, ref, b.approver_message(view, approver.user_id)))
            channel = refs.get("channel")
            if channel:
                work.append(self._update(view, channel, b.channel_message(view)))
            await asyncio.gather(*work)
            if channel:
                for decision in view.decisions:
                    purpose = f"reply:{decision.approver_id}"
                    if purpose not in refs:
                        await self._post(
                            view,
                            purpose,
                            channel[0],
                            b.decision_reply(view, decision.approver_id),
                            "thread reply",
                            thread_ts=channel[1],
                        )
            if view.status in (Status.APPROVED, Status.DENIED) and "outcome" not in refs:
                await self._post(view, "outcome", view.requester_id, b.requester_outcome(view), "outcome DM")

    async def post_to_requester(self, view: RequestView, content: tuple[str, list[Block]]) -> None:
        """The confirmation DM for a request made through the form (a form has no reply of its own)."""
        async with self._lock(view.id):
            await self._post(view, "confirmation", view.requester_id, content, "confirmation DM")

    async def _post_channel(self, view: RequestView) -> str | None:
        if not self.notify_channel:
            return None
        problem = await self._post(
            view,
            "channel",
            self.notify_channel,
            b.channel_message(view),
            "I could not post to the notification channel",
        )
        return problem

    async def _post(
        self,
        view: RequestView,
        purpose: str,
        channel: str,
        content: tuple[str, list[Block]],
        what: str,
        thread_ts: str | None = None,
    ) -> str | None:
        text, blocks = content
        try:
            response = await self.client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, metadata=b.metadata(view), thread_ts=thread_ts
            )
        except SlackApiError as exc:
            error = str(exc.response.get("error"))
            log.error(
                "chat.postMessage failed: request=%s purpose=%s channel=%s error=%s",
                view.id,
                purpose,
                channel,
                error,
            )
            return f"{what} ({ERRORS_FOR_PEOPLE.get(error, error)})."
        await services.record_message(
            uow=self.uow(),
            request_id=view.id,
            purpose=purpose,
            channel_id=response["channel"],
            ts=response["ts"],
        )
        return None

    async def _update(self, view: RequestView, ref: tuple[str, str], content: tuple[str, list[Block]]) -> None:
        text, blocks = content
        try:
            await self.client.chat_update(
                channel=ref[0], ts=ref[1], text=text, blocks=blocks, metadata=b.metadata(view)
            )
        except SlackApiError as exc:
            log.error(
                "chat.update failed: request=%s channel=%s ts=%s error=%s",
                view.id,
                ref[0],
                ref[1],
                exc.response.get("error"),
            )


Tell = Callable[[str], Awaitable[None]]
