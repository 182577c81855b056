"""Tokens and the signing secret never reach logs (at DEBUG), errors or the audit log; .env stays private."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

from sqlmodel import select

from bot.adapters.db import Database
from bot.adapters.tables import AuditRow, OutboxRow
from bot.testing import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack, Fault
from tests.databases import sqlite_url
from tests.reliability.processes import ROOT, BotProcess

SECRETS = (BOT_TOKEN, SIGNING_SECRET, APP_TOKEN)


async def _flow(slack: FakeSlack) -> None:
    slack.inject("chat.postMessage", Fault.http(500), Fault.slack_error("internal_error"))  # errors get logged
    await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> secrets scan")
    await slack.slash("UREQ", "prod-db <@UALICE> <@UALICE> a mistake")
    for _ in range(200):
        if slack.dms("UALICE") and slack.dms("UBOB"):
            break
        await asyncio.sleep(0.05)
    await slack.click("UALICE", slack.dms("UALICE")[0], "approve_request")
    await slack.click("UBOB", slack.dms("UBOB")[0], "approve_request")
    await slack.open_home("UALICE")
    await asyncio.sleep(1.0)


async def _leaks_in_database(url: str) -> list[str]:
    db = Database(url)
    try:
        async with db.uow() as uow:
            rows = [
                *(await uow.session.execute(select(AuditRow))).scalars(),  # type: ignore[attr-defined]
                *(await uow.session.execute(select(OutboxRow))).scalars(),
            ]  # type: ignore[attr-defined]
        dumped = json.dumps([r.model_dump(mode="json") for r in rows])
        return [s for s in SECRETS if s in dumped]
    finally:
        await db.dispose()


async def test_http_run_at_debug_leaks_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "s.db")
    async with FakeSlack() as slack:
        bot = BotProcess(slack, url, tmp_path, LOG_LEVEL="DEBUG")
        slack.bot_url = bot.url
        await bot.start()
        try:
            await _flow(slack)
        finally:
            assert await bot.stop() == 0
            await slack.close_http()
    log = bot.log.read_text()
    assert "DEBUG" in log and "chat.postMessage" in log  # the scan read a real debug log
    assert [s for s in SECRETS if s in log] == []
    assert await _leaks_in_database(url) == []


async def test_socket_mode_run_at_debug_leaks_nothing(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "s.db")
    async with FakeSlack() as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL"))}
        env.update(
            PYTHONPATH=str(ROOT),
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_APP_TOKEN=APP_TOKEN,
            SLACK_API_URL=slack.api_url,
            DATABASE_URL=url,
            NOTIFY_CHANNEL="CNOTIFY",
            LOG_LEVEL="DEBUG",
        )
        log_path = tmp_path / "socket.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", env=env, cwd=tmp_path, stdout=log, stderr=log
            )
        try:
            await asyncio.wait_for(slack.socket.connected.wait(), 60)
            slack.mode = "socket"
            await _flow(slack)
        finally:
            process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(process.wait(), 30) == 0
    log_text = log_path.read_text()
    assert "DEBUG" in log_text
    assert [s for s in SECRETS if s in log_text] == []
    assert await _leaks_in_database(url) == []


def test_env_is_ignored_and_the_example_holds_placeholders() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    example = (ROOT / ".env.example").read_text()
    assert not re.search(r"xox[bpa]-\d|xapp-\d-|[0-9a-f]{32}", example)
    assert "SLACK_BOT_TOKEN=xoxb-your-bot-token" in example
