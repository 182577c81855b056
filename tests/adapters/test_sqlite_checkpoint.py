"""The bot's SQLite commits leave checkpointing the write-ahead log to a task in a worker thread
(``bot.adapters.sqlite_checkpoint``): a checkpoint inside a commit stopped the event loop for 4-6 ms."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.adapters.db import Database
from bot.domain.values import Approver
from bot.service_layer import services
from tests.databases import sqlite_url


def requests_in_database_file(path: Path) -> int:
    """The requests the database file itself holds, without its write-ahead log (what a checkpoint copied)."""
    copy = path.with_name("copy.db")
    shutil.copyfile(path, copy)  # the file alone: no -wal beside it
    conn = sqlite3.connect(copy)
    try:
        return int(conn.execute("SELECT count(*) FROM access_requests").fetchone()[0])
    except sqlite3.OperationalError:  # not even the table has been copied yet
        return 0
    finally:
        conn.close()
        copy.unlink()


async def create(db: Database, n: int) -> None:
    for i in range(n):
        await services.create_request(
            uow=db.uow(),
            requester_id=f"UREQ{i}",
            resource="db",
            justification="j",
            approvers=[Approver("UA"), Approver("UB")],
        )


async def autocheckpoint(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar_one())


async def test_the_bots_connections_never_checkpoint_in_a_commit_and_others_do(tmp_path: Path) -> None:
    bot = Database(sqlite_url(tmp_path / "bot.db"), background_checkpoints=True)
    cli = Database(sqlite_url(tmp_path / "bot.db"))  # e.g. ``python -m bot migrate``: SQLite's own checkpoints
    try:
        assert await autocheckpoint(bot) == 0
        assert await autocheckpoint(cli) == 1000
    finally:
        await bot.dispose()
        await cli.dispose()


async def test_the_background_task_copies_the_commits_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    db = Database(sqlite_url(path), background_checkpoints=True)
    assert db.checkpointer is not None
    db.checkpointer.every = 0.05
    await db.upgrade()
    try:
        await create(db, 3)
        await asyncio.sleep(0.2)
        assert requests_in_database_file(path) == 0  # not started: the three are only in the log
        db.start()
        for _ in range(100):
            if requests_in_database_file(path) == 3:
                break
            await asyncio.sleep(0.05)
        assert requests_in_database_file(path) == 3
        await create(db, 2)  # and it keeps going
        for _ in range(100):
            if requests_in_database_file(path) == 5:
                break
            await asyncio.sleep(0.05)
        assert requests_in_database_file(path) == 5
    finally:
        await db.dispose()
    assert requests_in_database_file(path) == 5


async def test_stopping_waits_for_the_checkpoint_in_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint runs in a thread that cannot be cancelled: stopping waits for it before closing its
    connection (closing a connection in use fails, and the bot's shutdown with it)."""
    path = tmp_path / "bot.db"
    db = Database(sqlite_url(path), background_checkpoints=True)
    checkpointer = db.checkpointer
    assert checkpointer is not None
    checkpointer.every = 0.01
    await db.upgrade()
    await create(db, 1)
    running, finished = threading.Event(), threading.Event()
    slow = checkpointer._checkpoint

    def slow_checkpoint() -> None:
        running.set()
        time.sleep(0.3)
        slow()
        finished.set()

    monkeypatch.setattr(checkpointer, "_checkpoint", slow_checkpoint)
    db.start()
    assert await asyncio.to_thread(running.wait, 5)
    await db.dispose()  # while the checkpoint sleeps in its thread
    assert finished.is_set()
    assert requests_in_database_file(path) == 1
