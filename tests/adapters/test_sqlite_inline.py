"""SQLite calls run on the event loop's thread, so a lock held elsewhere must be waited for without stopping
the loop (another process, an admin command, or a second engine on the same file)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

from bot.adapters.db import Database
from bot.domain.values import Approver
from bot.service_layer import services
from tests.databases import sqlite_url


def _hold_write_lock(path: str, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    locked.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


async def test_a_write_waits_for_a_lock_held_elsewhere_without_blocking_the_loop(tmp_path: object) -> None:
    path = f"{tmp_path}/bot.db"
    db = Database(sqlite_url(path))
    await db.upgrade()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 0.5, locked))
    holder.start()
    tick_task = asyncio.create_task(ticker())
    try:
        await asyncio.to_thread(locked.wait)
        started = time.monotonic()
        view = await services.create_request(
            uow=db.uow(),
            requester_id="UREQ",
            requester_name="Riley",
            resource="prod-db",
            justification="incident 42",
            approvers=[Approver("UALICE", "Alice"), Approver("UBOB", "Bob")],
        )
        waited = time.monotonic() - started
        ticks_during_wait = ticks
    finally:
        tick_task.cancel()
        await asyncio.to_thread(holder.join)
        await db.dispose()
    assert view.status.value == "PENDING"
    assert waited >= 0.3  # it did wait for the other connection's transaction
    assert ticks_during_wait >= 15  # and the loop kept running meanwhile (about 50 ticks in 0.5 s)


async def test_a_read_is_not_held_up_by_a_writer_elsewhere(tmp_path: object) -> None:
    path = f"{tmp_path}/bot.db"
    db = Database(sqlite_url(path))
    await db.upgrade()
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 0.5, locked))
    holder.start()
    try:
        await asyncio.to_thread(locked.wait)
        started = time.monotonic()
        page = await services.list_requests(uow=db.uow())
        took = time.monotonic() - started
    finally:
        await asyncio.to_thread(holder.join)
        await db.dispose()
    assert page.items == ()
    assert took < 0.2  # WAL: readers do not wait for the writer
