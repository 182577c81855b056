from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.slack.conftest import World, start_world, stop_world, world

__all__ = ["world"]


@pytest.fixture
async def http_world(tmp_path: Path) -> AsyncIterator[World]:
    """The bot over HTTP with Carol as its only admin."""
    w = await start_world(tmp_path, "http", admin_users=frozenset({"UCAROL"}))
    try:
        yield w
    finally:
        await stop_world(w)
