"""The Slack clients log each call at DEBUG when logging is set to DEBUG, and do not build those lines otherwise."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.slack.app import slack_client
from bot.testing import FakeSlack
from tests.slack.conftest import bot_settings


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.close_http()
        await fake.stop()


@pytest.fixture
def root_level() -> Iterator[None]:
    before = logging.getLogger().level
    yield None
    logging.getLogger().setLevel(before)


async def test_debug_logging_shows_each_call(
    slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture, root_level: None
) -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    client = slack_client(bot_settings(slack, tmp_path / "bot.db", socket=False), retries=False)
    with caplog.at_level(logging.DEBUG):
        await client.auth_test()
    lines = [r.getMessage() for r in caplog.records]
    assert any("Sending a request" in m and "auth.test" in m for m in lines)
    assert any("Received the following response" in m for m in lines)


async def test_above_debug_the_call_lines_are_not_even_built(
    slack: FakeSlack, tmp_path: Path, caplog: pytest.LogCaptureFixture, root_level: None
) -> None:
    logging.getLogger().setLevel(logging.INFO)
    client = slack_client(bot_settings(slack, tmp_path / "bot.db", socket=False), retries=False)
    # slack_sdk builds them when the logger's own level is DEBUG or unset (NOTSET counts as "<= DEBUG")
    assert client.logger.level > logging.DEBUG
    with caplog.at_level(logging.INFO):
        await client.auth_test()
    assert not [r for r in caplog.records if "Sending a request" in r.getMessage()]
