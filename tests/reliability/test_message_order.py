"""One message's notices go out in order, also when the first fails while later ones are already handed to the
dispatcher: a thread reply needs its channel message, an update its DM."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.service_layer import delivery
from bot.testing import Fault
from tests.slack.conftest import start_world, stop_world


async def test_a_failed_post_takes_its_messages_later_notices_back(tmp_path: Path) -> None:
    world = await start_world(tmp_path, "http", outbox_base_delay=0.05)
    slack, failed = world.slack, []

    def channel_post_fails_once(method: str, params: dict[str, Any]) -> Fault | None:
        if method == "chat.postMessage" and params.get("channel") == "CNOTIFY" and not params.get("thread_ts"):
            if not failed:
                failed.append(params)
                return Fault(status=503, delay=1.0)  # slow, then an error: Bob decides meanwhile
        return None

    slack.chaos = channel_post_fails_once  # type: ignore[assignment]
    try:
        reply = await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
        rid = reply.text.split("Request ")[1].split(" ")[0]
        for _ in range(100):
            if slack.dm_about("UBOB", rid) is not None and failed:
                break
            await asyncio.sleep(0.02)
        await slack.click("UBOB", slack.dm_about("UBOB", rid), "approve_request")
        # Bob's decision queued the channel message's update and a thread reply behind its failing post.
        await world.settled(timeout=20)

        [channel] = [m for m in slack.channel_messages("CNOTIFY") if rid in m.text]
        thread = slack.channel_messages("CNOTIFY", thread_ts=channel.ts)
        assert [m.text for m in thread] == [f"<@UBOB> approved {rid}."]
        assert "1 of 2 approvals" in str(channel.blocks)
        entries = await delivery.outbox_entries(uow=world.bot.db.uow(), statuses=("skipped", "failed", "dead"))
        assert [e.dedupe_key for e in entries if e.request_id == rid and e.target == "channel"] == []
    finally:
        slack.chaos = None
        await stop_world(world)


async def _slow_dms_then_channel_post(tmp_path: Path) -> tuple[Any, str]:
    """A bot delivering one notice at a time, whose lease is 1 s; the two DMs take Slack 0.4 s each (within
    SLACK_TIMEOUT), so that the channel post waits in memory past half its lease. Returns the world and the request
    once everything is delivered."""
    world = await start_world(tmp_path, "http", outbox_lease_seconds=1.0, slack_timeout=0.5)
    world.bot.dispatcher.batch = world.bot.dispatcher.batch_while_acking = 1
    world.bot.dispatcher.dm_places = 0  # approvers' DMs have no place more: one at a time
    world.slack.inject("chat.postMessage", Fault.latency(0.4), Fault.latency(0.4))
    reply = await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
    await world.settled(timeout=20)
    return world, reply.text.split("Request ")[1].split(" ")[0]


async def _channel_post(world: Any, rid: str) -> Any:
    [notice] = [
        e
        for e in await delivery.outbox_entries(uow=world.bot.db.uow(), statuses=("done",))
        if e.dedupe_key == f"{rid}:post:channel"
    ]
    return notice


async def test_a_notice_waiting_past_half_its_lease_has_its_lease_renewed(tmp_path: Path) -> None:
    world, rid = await _slow_dms_then_channel_post(tmp_path)
    slack = world.slack
    try:
        assert len(slack.dms("UALICE")) == len(slack.dms("UBOB")) == 1
        assert len([m for m in slack.channel_messages("CNOTIFY") if rid in m.text]) == 1
        # Renewed while it waited: never given back, so never taken for one that may have been posted already.
        assert [m for m, _ in slack.calls if m == "conversations.history"] == []
        assert (await _channel_post(world, rid)).claims == 1
    finally:
        await stop_world(world)


async def test_a_notice_goes_back_before_its_lease_runs_out_when_it_cannot_be_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def database_refuses(**kwargs: Any) -> set[int]:
        raise RuntimeError("the database is unreachable")

    monkeypatch.setattr(delivery, "renew_leases", database_refuses)
    world, rid = await _slow_dms_then_channel_post(tmp_path)
    slack = world.slack
    try:
        assert len(slack.dms("UALICE")) == len(slack.dms("UBOB")) == 1
        assert len([m for m in slack.channel_messages("CNOTIFY") if rid in m.text]) == 1
        # The channel post waited behind both DMs past half its lease: it went back and, claimed again, the bot
        # first looked for it in the channel (another process could have posted it meanwhile) and then posted it.
        methods = [(m, p.get("channel") or p.get("users")) for m, p in slack.calls]
        looked = methods.index(("conversations.history", "CNOTIFY"))
        posted = methods.index(("chat.postMessage", "CNOTIFY"))
        assert looked < posted
        assert (await _channel_post(world, rid)).claims >= 2
    finally:
        await stop_world(world)


async def test_a_delivery_made_while_deliveries_are_being_recorded_is_recorded_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deliveries are recorded in groups. One finished while a group is being written must go into the next
    group, not wait (pending and leased) until its lease runs out and it is looked for again."""
    world = await start_world(tmp_path, "http")
    slack, recorded = world.slack, delivery.notices_delivered

    async def slow_disk(**kwargs: Any) -> None:  # each group takes 0.5 s to write
        await asyncio.sleep(0.5)
        await recorded(**kwargs)

    monkeypatch.setattr(delivery, "notices_delivered", slow_disk)
    slack.inject("chat.postMessage", Fault(), Fault(), Fault.latency(0.2))  # the channel post ends mid-write
    try:
        reply = await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
        rid = reply.text.split("Request ")[1].split(" ")[0]
        await world.settled(timeout=5)  # the lease is 30 s
        assert [rid in m.text for m in slack.channel_messages("CNOTIFY")] == [True]
        assert [m for m, _ in slack.calls if m == "conversations.history"] == []  # nothing looked for again
    finally:
        await stop_world(world)
