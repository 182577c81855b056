"""Idempotent input: a modal submitted twice, a button pressed twice at once, SIGTERM in the middle of work."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.service_layer import services
from bot.testing import Fault, payloads
from tests.databases import sqlite_url
from tests.reliability.processes import BotProcess
from tests.slack.conftest import World, eventually


async def test_a_modal_submitted_twice_makes_one_request(world: World) -> None:
    slack = world.slack
    await slack.slash("UREQ", "")
    [form] = slack.open_views("UREQ")
    values = {"resource": "prod-db", "approver_1": "UALICE", "approver_2": "UBOB", "justification": "twice"}
    first, second = (payloads.view_submission(slack, "UREQ", form, values) for _ in range(2))
    replies = await asyncio.gather(slack.deliver("interactive", first), slack.deliver("interactive", second))
    assert [r.status for r in replies] == [200, 200]
    await world.settled()
    page = await services.list_requests(uow=world.bot.db.uow())
    assert page.total == 1
    assert len(slack.dms("UALICE")) == 1 and len(slack.dms("UREQ")) == 1  # one DM each, one confirmation


async def test_a_button_pressed_twice_at_once_decides_once(world: World) -> None:
    slack = world.slack
    await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> double click")
    await eventually(lambda: len(slack.dms("UALICE")) == 1)
    dm = slack.dms("UALICE")[0].snapshot()
    replies = await asyncio.gather(*(slack.click("UALICE", dm, "approve_request") for _ in range(4)))
    assert {r.status for r in replies} == {200}
    await world.settled()
    [view] = (await services.list_requests(uow=world.bot.db.uow())).items
    assert len(view.decisions) == 1
    channel = slack.channel_messages("CNOTIFY")[0]
    assert len(slack.channel_messages("CNOTIFY", thread_ts=channel.ts)) == 1


async def test_sigterm_finishes_work_in_flight(tmp_path: Path) -> None:
    from bot.testing import FakeSlack

    async with FakeSlack() as slack:
        url = sqlite_url(tmp_path / "term.db")
        bot = BotProcess(slack, url, tmp_path)
        slack.bot_url = bot.url
        await bot.start()
        try:
            slack.inject("chat.postMessage", Fault.latency(1.0), Fault.latency(1.0), Fault.latency(1.0))
            reply = await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> stopping")
            assert "is sent to" in reply.text
            for _ in range(250):  # until the three posts are in flight, each held for a second by Slack
                if len(slack.calls_to("chat.postMessage")) == 3:
                    break
                await asyncio.sleep(0.02)
            assert len(slack.calls_to("chat.postMessage")) == 3
            assert await bot.stop() == 0
            assert len(slack.dms("UALICE")) == len(slack.dms("UBOB")) == 1
            assert len(slack.channel_messages("CNOTIFY")) == 1
        finally:
            await bot.stop()
            await slack.close_http()
