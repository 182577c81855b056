"""Approvers named in Slack, checked with users.info: before anything is stored (the form), or while the request is
stored, nobody told of it until they pass (the slash command: ``services.create_request_while_checking``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.errors import CheckUnavailable, InvalidRequest
from bot.domain.values import Approver
from bot.recent import put_recent
from bot.slack import text as t

log = logging.getLogger(__name__)


UNAVAILABLE = (
    "Slack could not tell me who the approvers are just now; nothing was stored. Please try again in a minute."
)


class SlackUnavailable(CheckUnavailable):
    code = "slack_unavailable"


class RecentApprovers:
    """Approvers who passed their users.info check in the last ``ttl`` seconds, in this process (the ``size`` most
    recent). A slash command naming only such people is confirmed as soon as its request is stored, without waiting
    for Slack's answers (which cross the internet): the check is still made, and still decides whether anybody is
    told of the request; one that fails withdraws the request and says why (``commands.access_request``)."""

    def __init__(self, ttl: float = 600.0, size: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._seen: OrderedDict[str, tuple[float, Approver]] = OrderedDict()

    def remember(self, approvers: Sequence[Approver]) -> None:
        now = self.clock()
        for approver in approvers:
            put_recent(self._seen, approver.user_id, (now, approver), self.size)

    def forget(self, user_id: str) -> None:
        self._seen.pop(user_id, None)

    def get(self, user_ids: Sequence[str]) -> list[Approver] | None:
        """All of ``user_ids`` as they passed their check lately, or None if any did not."""
        now, found = self.clock(), []
        for user_id in user_ids:
            seen = self._seen.get(user_id)
            if seen is None or now - seen[0] > self.ttl:
                return None
            found.append(seen[1])
        return found


async def resolve_approvers(
    client: AsyncWebClient,
    user_ids: Sequence[str],
    *,
    requester_id: str,
    required: int,
    recent: RecentApprovers | None = None,
) -> list[Approver]:
    """Approvers for ``user_ids``, or InvalidRequest naming the field (``approver_N``) and what to fix. ``recent``
    learns who passed, and forgets who did not."""
    for i, user_id in enumerate(user_ids, start=1):
        if user_id == requester_id:
            raise InvalidRequest("You cannot approve your own request: name two other people.", field=f"approver_{i}")
    if len(set(user_ids)) != len(user_ids):
        raise InvalidRequest(
            f"The approvers must be {required} different people; the same person is named twice.",
            field=f"approver_{len(user_ids)}",
        )
    found = await _lookups(client, user_ids)
    approvers = []
    for i, (user_id, user) in enumerate(zip(user_ids, found, strict=True), start=1):
        field = f"approver_{i}"
        if recent is not None:
            recent.forget(user_id)  # remembered again below if this user passes
        if user is None:
            raise InvalidRequest(f"I can't find {t.user(user_id)} in this workspace: choose someone else.", field=field)
        if user.get("is_bot") or user.get("is_app_user") or user_id == "USLACKBOT":
            raise InvalidRequest(f"{t.user(user_id)} is an app, not a person: approvers must be people.", field=field)
        if user.get("deleted"):
            raise InvalidRequest(f"{t.user(user_id)}'s account is deactivated: choose someone else.", field=field)
        profile = user.get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user.get("name")
        approvers.append(Approver(user_id, str(name or user_id)[:255], profile.get("email")))
    if recent is not None:
        recent.remember(approvers)
    return approvers


async def _lookups(client: AsyncWebClient, user_ids: Sequence[str]) -> list[dict[str, Any] | None]:
    """users.info for each of ``user_ids``, together: the first in this coroutine, the others in tasks. Gathered
    instead, the last answer reached this coroutine a turn of the event loop later (the gather's own future), and a
    busy loop's turn is milliseconds that the person waits for their ack."""
    if not user_ids:
        return []
    others = [asyncio.ensure_future(_lookup(client, u)) for u in user_ids[1:]]
    try:
        first = await _lookup(client, user_ids[0])
        return [first, *[await task for task in others]]
    finally:
        for task in others:  # when one failed: the others are not waited for
            if not task.done():
                task.cancel()
            elif not task.cancelled():
                task.exception()  # retrieved: raised above, or moot


async def _lookup(client: AsyncWebClient, user_id: str) -> dict[str, Any] | None:
    try:
        response = await client.users_info(user=user_id)
    except SlackApiError as exc:
        if exc.response.get("error") in ("user_not_found", "users_not_found"):
            return None
        log.warning("users.info for %s failed: %s", user_id, exc.response.get("error"))
        raise SlackUnavailable(UNAVAILABLE) from exc
    except (TimeoutError, aiohttp.ClientError) as exc:
        log.warning("users.info for %s got no answer: %s", user_id, type(exc).__name__)
        raise SlackUnavailable(UNAVAILABLE) from exc
    user: dict[str, Any] = response["user"]
    return user
