"""End-to-end harness: the fake Slack and the real bot, over signed HTTP or a Socket Mode websocket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.config import Settings
from bot.service_layer import delivery
from bot.slack.runner import BotServer
from bot.testing import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack
from bot.testing.workspace import Message
from tests.databases import sqlite_url


@dataclass
class World:
    slack: FakeSlack
    bot: BotServer
    mode: str

    async def settled(self, timeout: float = 10.0) -> None:
        """Wait until the outbox has delivered everything owed so far."""
        deadline = asyncio.get_running_loop().time() + timeout
        while await delivery.outbox_entries(uow=self.bot.db.uow(), statuses=("pending",), limit=1):
            assert asyncio.get_running_loop().time() < deadline, "the outbox did not drain"
            await asyncio.sleep(0.02)


def bot_settings(slack: FakeSlack, db_path: Path, *, socket: bool, **overrides: object) -> Settings:
    values: dict[str, object] = dict(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_app_token=APP_TOKEN if socket else None,
        slack_api_url=slack.api_url,
        host="127.0.0.1",
        port=0,
        database_url=sqlite_url(db_path),
        notify_channel="CNOTIFY",
    )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def start_world(tmp_path: Path, mode: str, **overrides: object) -> World:
    slack = await FakeSlack().start()
    bot = BotServer(bot_settings(slack, tmp_path / "bot.db", socket=mode == "socket", **overrides))
    await bot.start()
    slack.mode = mode
    if mode == "http":
        slack.bot_url = f"http://127.0.0.1:{bot.port}/slack/events"
    else:
        await asyncio.wait_for(slack.socket.connected.wait(), 10)
    return World(slack, bot, mode)


async def stop_world(world: World) -> None:
    await world.bot.stop()
    await world.slack.close_http()
    await world.slack.stop()


@pytest.fixture(params=["http", "socket"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    w = await start_world(tmp_path, request.param)
    try:
        yield w
    finally:
        await stop_world(w)
    assert w.slack.unexpected == [], f"the bot called methods Slack does not have: {w.slack.unexpected}"
    assert not getattr(w.slack, "slow_acks", []), f"acks slower than Slack's 3 s: {w.slack.slow_acks}"


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until ``check()`` passes (work after the ack runs in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = check()
            if result is None or result:
                return
            error: Exception = AssertionError(f"{check} returned {result!r}")
        except AssertionError as exc:
            error = exc
        if asyncio.get_running_loop().time() > deadline:
            raise error
        await asyncio.sleep(0.02)


async def settled_dm(world: World, approver: str = "UALICE") -> tuple[str, Message]:
    """A new request, its notices delivered; its id and ``approver``'s DM about it."""
    reply = await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
    rid = reply.text.split("Request ")[1].split(" ")[0]
    await world.settled()
    dm = world.slack.dm_about(approver, rid)
    assert dm is not None
    return rid, dm
