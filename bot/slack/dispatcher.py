"""Delivers the outbox: every Slack message owed about a request, exactly once, in order per message.

Woken right after a commit that queued notices, and sweeping every few seconds for whatever is left (after a
crash, say). Retries with exponential backoff and jitter, honouring Retry-After; permanent errors are recorded
and, where a person is waiting, explained to them; after ``max_attempts`` a notice is a dead letter.

chat.postMessage is not idempotent: when an earlier attempt may have reached Slack (a timeout, a 5xx, a crash
between Slack's answer and our commit), the dispatcher first looks for the message by the notice key it
carries in its metadata, and only posts if it is not there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from bot.adapters.outbox import Claimed
from bot.service_layer import delivery
from bot.service_layer import notices as n
from bot.service_layer.results import RequestView
from bot.service_layer.unit_of_work import UnitOfWorkFactory
from bot.slack import blocks as b
from bot.slack import text as t

log = logging.getLogger("bot.outbox")
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "user_not_found",
    "user_disabled",
    "cannot_dm_bot",
    "is_archived",
    "invalid_blocks",
    "msg_too_long",
    "no_text",
    "invalid_metadata_format",
    "invalid_metadata_schema",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "restricted_action",
    "missing_scope",
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "no_permission",
    "thread_not_found",
}
REASONS = {
    "channel_not_found": "the channel does not exist or is private",
    "not_in_channel": "the bot is not in that channel: invite it with /invite",
    "user_not_found": "that person is not in this workspace",
    "user_disabled": "their account is deactivated",
    "cannot_dm_bot": "it is an app, which cannot receive messages",
    "is_archived": "the channel is archived",
}


class Skip(Exception):
    """Nothing to deliver (e.g. an update of a message that could never be posted)."""


class Dispatcher:
    def __init__(
        self,
        client: AsyncWebClient,
        uow: UnitOfWorkFactory,
        notify_channel: str | None,
        *,
        lease: timedelta = timedelta(seconds=30),
        max_attempts: int = 8,
        base_delay: float = 0.5,
        max_delay: float = 300.0,
        sweep_every: float = 2.0,
        batch: int = 20,
        batch_while_acking: int = 4,
        flush_pause: float = 0.01,
    ) -> None:
        self.client, self.uow, self.notify_channel = client, uow, notify_channel
        self.lease, self.max_attempts, self.base_delay, self.max_delay = lease, max_attempts, base_delay, max_delay
        self.sweep_every, self.batch, self.flush_pause = sweep_every, batch, flush_pause
        # Slack gives a request 3 s for its ack; a notice can wait. While requests wait for their ack (counted by
        # the app's middleware), fewer deliveries are started, so that the acks get the event loop first.
        self.batch_while_acking, self.awaiting_ack = batch_while_acking, 0
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._delivered: list[delivery.Delivery] = []
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="outbox-dispatcher")

    async def stop(self) -> None:
        """Finish the deliveries in flight, then stop; what is still queued waits for the next start."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        """Keep up to ``batch`` deliveries in flight; claim more whenever one ends, a commit queues notices,
        or the sweep comes round."""
        in_flight: set[asyncio.Task[None]] = set()
        while not self._stopping:
            self._wake.clear()
            room = (self.batch_while_acking if self.awaiting_ack else self.batch) - len(in_flight)
            if room > 0:
                try:
                    claimed = await delivery.claim_notices(uow=self.uow(), by=self.name, lease=self.lease, limit=room)
                except Exception:
                    log.exception("outbox: claiming notices failed; trying again shortly")
                    claimed = []
                contexts = await self._contexts(claimed)
                for notice in claimed:
                    task = asyncio.create_task(self._deliver(notice, contexts.get(notice.request_id)))
                    in_flight.add(task)
                    task.add_done_callback(self._finished(in_flight))
                if claimed and len(claimed) == room:
                    continue  # there may be more due
            try:
                await asyncio.wait_for(self._wake.wait(), self.sweep_every)
            except TimeoutError:
                pass
        await asyncio.gather(*in_flight, return_exceptions=True)
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush_deliveries()

    async def _contexts(self, claimed: list[Claimed]) -> dict[str, delivery.NoticeContext]:
        """Each claimed notice's request and message places, read together in one unit."""
        if not claimed:
            return {}
        try:
            return await delivery.notice_contexts(uow=self.uow(), request_ids={n.request_id for n in claimed})
        except Exception:
            log.exception("outbox: reading the requests of claimed notices failed")
            return {}

    def _record(self, done: delivery.Delivery) -> None:
        """Note a delivery; it is recorded with the others made within ``flush_pause`` (a group commit). Until
        then the notice stays pending and leased, so the next notice of its message waits for it."""
        self._delivered.append(done)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_after_pause(), name="outbox-flush")

    async def _flush_after_pause(self) -> None:
        await asyncio.sleep(self.flush_pause)
        try:
            await self._flush_deliveries()
        except Exception:  # the notices stay leased; their next attempt finds the posted messages
            log.exception("outbox: recording deliveries failed")

    async def _flush_deliveries(self) -> None:
        """Record every delivery made since the last flush in one transaction (a group commit). A crash
        before it commits leaves the notices claimed; their next attempt finds the posted messages."""
        async with self._flush_lock:
            done, self._delivered = self._delivered, []
            if done:
                await delivery.notices_delivered(uow=self.uow(), deliveries=done)
        self._wake.set()

    def _finished(self, in_flight: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("outbox: a delivery failed unexpectedly", exc_info=task.exception())
            self._wake.set()  # room for more, and the next notice of that message may be due

        return done

    async def _deliver(self, notice: Claimed, context: delivery.NoticeContext | None) -> None:
        try:
            if context is None:
                context = await delivery.notice_context(uow=self.uow(), request_id=notice.request_id)
            placed = await self._perform(notice, *context)
        except Skip as skip:
            await delivery.notice_skipped(uow=self.uow(), notice=notice, why=str(skip))
        except SlackApiError as exc:
            await self._on_slack_error(notice, exc)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            await self._retry(notice, f"no answer from Slack ({type(exc).__name__})")
        else:
            self._record(delivery.Delivery(notice, *(placed or (None, None, None))))

    async def _on_slack_error(self, notice: Claimed, exc: SlackApiError) -> None:
        status = getattr(exc.response, "status_code", 200)
        error = str(exc.response.get("error", "")) if isinstance(exc.response.data, dict) else ""
        if status == 429:
            retry_after = float(exc.response.headers.get("Retry-After", exc.response.headers.get("retry-after", 1)))
            await self._retry(notice, f"rate limited (Retry-After {retry_after:g}s)", at_least=retry_after)
        elif status >= 500 or error not in PERMANENT:
            await self._retry(notice, f"Slack answered {status} {error}".strip())
        else:
            log.error("outbox: notice %s failed for good: %s", notice.dedupe_key, error)
            await delivery.notice_failed(
                uow=self.uow(), notice=notice, error=error, tell_requester=_problem_text(notice, error)
            )

    async def _retry(self, notice: Claimed, error: str, at_least: float = 0.0) -> None:
        delay = min(self.max_delay, self.base_delay * 2**notice.attempts) * random.uniform(0.5, 1.5)
        alive = await delivery.notice_retry(
            uow=self.uow(),
            notice=notice,
            error=error,
            delay=timedelta(seconds=max(delay, at_least)),
            max_attempts=self.max_attempts,
            tell_requester=_problem_text(notice, "Slack kept failing; an admin can retry it"),
        )
        (log.warning if alive else log.error)(
            "outbox: notice %s %s: %s", notice.dedupe_key, "will be retried" if alive else "is a dead letter", error
        )

    # -- what each notice does ------------------------------------------------------------------------------

    async def _perform(
        self, notice: Claimed, view: RequestView, refs: dict[str, tuple[str, str]]
    ) -> tuple[str, str, str] | None:
        subject = notice.subject or ""
        match notice.action:
            case n.POST_DM:
                return await self._post(notice, view, refs, f"dm:{subject}", subject, b.approver_message(view, subject))
            case n.UPDATE_DM:
                await self._update(view, refs, f"dm:{subject}", b.approver_message(view, subject))
                return None
            case n.POST_CHANNEL:
                if not self.notify_channel:
                    raise Skip("NOTIFY_CHANNEL is not set")
                return await self._post(notice, view, refs, "channel", self.notify_channel, b.channel_message(view))
            case n.UPDATE_CHANNEL:
                await self._update(view, refs, "channel", b.channel_message(view))
                return None
            case n.POST_REPLY:
                if "channel" not in refs:
                    raise Skip("the channel message was never posted")
                channel, parent = refs["channel"]
                return await self._post(
                    notice, view, refs, f"reply:{subject}", channel, b.decision_reply(view, subject), thread_ts=parent
                )
            case n.POST_OUTCOME:
                return await self._post(notice, view, refs, "outcome", view.requester_id, b.requester_outcome(view))
            case n.POST_CONFIRMATION:
                return await self._post(notice, view, refs, "confirmation", view.requester_id, b.confirmation(view))
            case n.POST_PROBLEM:
                return await self._post(
                    notice,
                    view,
                    refs,
                    f"problem:{subject}",
                    view.requester_id,
                    b.notice(":warning: " + str(notice.details.get("text", ""))),
                )
        raise Skip(f"unknown action {notice.action}")

    async def _post(
        self,
        notice: Claimed,
        view: RequestView,
        refs: dict[str, tuple[str, str]],
        purpose: str,
        channel: str,
        content: tuple[str, Sequence[Block | b.Json]],
        thread_ts: str | None = None,
    ) -> tuple[str, str, str] | None:
        if purpose in refs:
            return None  # posted and recorded already
        if notice.maybe_delivered_before:
            found = await self._find_posted(notice, channel, thread_ts)
            if found is not None:
                log.info("outbox: %s was already posted (%s %s); not posting again", notice.dedupe_key, *found)
                return purpose, *found
        text, blocks = content
        response = await self.client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            metadata=b.metadata(view, notice=notice.dedupe_key),
        )
        return purpose, str(response["channel"]), str(response["ts"])

    async def _update(
        self,
        view: RequestView,
        refs: dict[str, tuple[str, str]],
        purpose: str,
        content: tuple[str, Sequence[Block | b.Json]],
    ) -> None:
        if purpose not in refs:
            raise Skip(f"no {purpose} message was ever posted")
        channel, ts = refs[purpose]
        text, blocks = content
        await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks, metadata=b.metadata(view))

    async def _find_posted(self, notice: Claimed, channel: str, thread_ts: str | None) -> tuple[str, str] | None:
        """The message an earlier attempt posted, found by the notice key in its metadata."""
        if channel[:1] in ("U", "W"):
            channel = str((await self.client.conversations_open(users=channel))["channel"]["id"])
        oldest = f"{notice.created_at.timestamp() - 60:.6f}"
        cursor: str | None = None
        for _ in range(10):
            kwargs: dict[str, Any] = {
                "channel": channel,
                "oldest": oldest,
                "limit": 200,
                "include_all_metadata": True,
                "cursor": cursor,
            }
            if thread_ts:
                page = await self.client.conversations_replies(ts=thread_ts, **kwargs)
            else:
                page = await self.client.conversations_history(**kwargs)
            for message in page.get("messages") or []:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("notice") == notice.dedupe_key:
                    return channel, str(message["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return None


def _problem_text(notice: Claimed, error: str) -> str | None:
    reason = REASONS.get(error, error)
    if notice.target.startswith("dm:") and notice.action == n.POST_DM:
        return (
            f"I could not message {t.user(notice.subject or '')} about your request {notice.request_id} "
            f"({reason}). The request waits for them in the bot's App Home; or cancel it and name someone else."
        )
    if notice.action == n.POST_CHANNEL:
        return f"I could not post your request {notice.request_id} to the notification channel ({reason})."
    return None
