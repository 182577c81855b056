"""The external contract: ``python -m bot`` as a process, configured only by its environment."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.testing import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack, sign
from tests.databases import sqlite_url

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_URL", "NOTIFY_", "PORT"))}
    env.update(values)
    return env


async def start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def stop(process: asyncio.subprocess.Process) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
        await fake.close_http()


def refused_start(tmp_path: Path, **values: str) -> list[str]:
    """``python -m bot`` with these settings, expected to refuse to start: the lines it wrote to stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        env=clean_env(PYTHONPATH=str(ROOT), **values),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    return done.stderr.strip().splitlines()


def test_missing_settings_exit_non_zero_with_one_line(tmp_path: Path) -> None:
    lines = refused_start(tmp_path)
    assert len(lines) == 1, lines
    assert "SLACK_BOT_TOKEN" in lines[0] and "SLACK_SIGNING_SECRET" in lines[0] and "README" in lines[0]


def test_a_lease_shorter_than_two_slack_timeouts_is_refused(tmp_path: Path) -> None:
    """Another replica could take a notice over while its call may still be in flight: posted twice."""
    lines = refused_start(
        tmp_path,
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        OUTBOX_LEASE_SECONDS="10",
        SLACK_TIMEOUT="10",
    )
    assert len(lines) == 1, lines
    assert "OUTBOX_LEASE_SECONDS (10) must be at least twice SLACK_TIMEOUT (10)" in lines[0]


def test_a_malformed_setting_is_named_in_one_line(tmp_path: Path) -> None:
    lines = refused_start(tmp_path, SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, PORT="http")
    assert lines == [
        "Invalid settings: PORT: Input should be a valid integer, unable to parse string as an integer "
        "(see README, Configuration)."
    ]


async def test_http_mode_process(slack: FakeSlack, tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
        PORT=str(port),
        DATABASE_URL=sqlite_url(tmp_path / "c.db"),
        NOTIFY_CHANNEL="CNOTIFY",
    )
    process = await start(env, tmp_path)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                        if r.status == 200:
                            assert (await r.json()) == {"ok": True, "mode": "http"}
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("the bot never answered /healthz")
            slack.bot_url, slack.mode = f"http://127.0.0.1:{port}/slack/events", "http"
            reply = await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
            assert reply.status == 200 and "is sent to <@UALICE> and <@UBOB>" in slack.last_ephemeral("UREQ")
            body = b"command=%2Faccess-request&text=help&user_id=UREQ"
            forged = await slack.post_raw(
                body, {"Content-Type": "application/x-www-form-urlencoded", **sign("not-the-secret", body)}
            )
            assert forged.status == 401
        for _ in range(100):
            if slack.dms("UBOB"):
                break
            await asyncio.sleep(0.05)
        assert slack.dms("UBOB")[0].metadata["event_payload"]["status"] == "PENDING"  # type: ignore[index]
    finally:
        code, err = await stop(process)
    assert code == 0, err
    assert BOT_TOKEN not in err and SIGNING_SECRET not in err


async def test_socket_mode_process(slack: FakeSlack, tmp_path: Path) -> None:
    env = clean_env(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=sqlite_url(tmp_path / "s.db"),
    )
    process = await start(env, tmp_path)
    try:
        await asyncio.wait_for(slack.socket.connected.wait(), 60)
        slack.mode = "socket"
        reply = await slack.slash("UREQ", "help")
        assert reply.status == 200 and "Ask for access" in slack.last_ephemeral("UREQ")
        await slack.socket.disconnect()  # Slack asks for a reconnect now and then
        for _ in range(200):
            if slack.socket.connects >= 2 and slack.socket.connections:
                break
            await asyncio.sleep(0.05)
        assert slack.socket.connects >= 2
        await slack.slash("UREQ", "list")
        assert "Your requests" in slack.last_ephemeral("UREQ")
    finally:
        code, err = await stop(process)
    assert code == 0, err
    assert APP_TOKEN not in err and BOT_TOKEN not in err
    assert json.dumps(slack.socket.acks)


async def test_a_refused_app_token_exits_with_one_line(slack: FakeSlack, tmp_path: Path) -> None:
    env = clean_env(
        PYTHONPATH=str(ROOT),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN="xapp-revoked",
        SLACK_API_URL=slack.api_url,
        DATABASE_URL=sqlite_url(tmp_path / "r.db"),
    )
    process = await start(env, tmp_path)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert err.decode().strip().splitlines()[-1].startswith("Slack refused to connect (invalid_auth)")
    assert "xapp-revoked" not in err.decode()
