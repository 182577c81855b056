"""Dead letters: visible in the logs and in ``python -m bot outbox list``; ``retry`` delivers them."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import pytest

from bot.service_layer import delivery
from bot.testing import Fault
from tests.databases import sqlite_url
from tests.reliability.processes import ROOT
from tests.slack.conftest import start_world, stop_world


async def run_cli(*args: str, db: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "outbox",
        *args,
        env={"PYTHONPATH": str(ROOT), "DATABASE_URL": db},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_dead_letter_is_listed_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    world = await start_world(tmp_path, "http", outbox_max_attempts=3, outbox_base_delay=0.01)
    db = sqlite_url(tmp_path / "bot.db")
    try:
        world.slack.chaos = lambda method, params: (
            Fault.slack_error("internal_error")
            if method == "chat.postMessage" and params.get("channel") == "UALICE"
            else None
        )
        world.slack.channels["CNOTIFY"].bot_is_member = False  # the channel post fails for good
        with caplog.at_level(logging.WARNING, logger="bot.outbox"):
            await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident")
            await world.settled()
        entries = await delivery.outbox_entries(uow=world.bot.db.uow())
        assert sorted((e.status, e.last_error) for e in entries) == [
            ("dead", "Slack answered 200 internal_error"),
            ("failed", "not_in_channel"),
        ]
        assert any("is a dead letter" in r.message for r in caplog.records)
        listed = await run_cli("list", db=db)
        assert "dead" in listed and "failed" in listed and "not_in_channel" in listed
        assert world.slack.dms("UALICE") == [] and len(world.slack.dms("UBOB")) == 1
        told = "\n".join(m.text for m in world.slack.dms("UREQ"))
        assert "I could not message <@UALICE>" in told and "Slack kept failing" in told
        world.slack.channels["CNOTIFY"].bot_is_member = True
        world.slack.chaos = None
        assert "Queued 2 notice(s) again" in await run_cli("retry", db=db)
        world.bot.dispatcher.wake()
        await world.settled()
        assert "Nothing: every notice was delivered." in await run_cli("list", db=db)
        assert len(world.slack.dms("UALICE")) == 1 and len(world.slack.channel_messages("CNOTIFY")) == 1
    finally:
        await stop_world(world)
