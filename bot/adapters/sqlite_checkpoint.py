"""WAL checkpoints of a SQLite database, in a worker thread instead of in whichever commit crosses the mark.

SQLite's automatic checkpoint runs inside the commit that finds the write-ahead log past 1000 pages. In the bot
every statement runs on the event loop (``sqlite_inline``), so that commit stopped the loop while the log was
copied into the database file and both were synced: about 1% of commits took 4-6 ms instead of 75 us, a third of
the time spent committing, with every request in flight waiting. The bot's connections turn the automatic
checkpoint off (``wal_autocheckpoint=0``) and this task checkpoints every ``every`` seconds on a connection of its
own, in a thread: sqlite3 releases the GIL while it copies and syncs, so the loop keeps running.

The checkpoint is PASSIVE: it copies what no reader still needs and never waits for a lock, so writers and readers
go on meanwhile, and what it leaves is copied by the next one. SQLite checkpoints the log when the last
connection closes, and a connection opened without this task (a CLI command, a test) checkpoints automatically.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import suppress

log = logging.getLogger("bot.sqlite")


class Checkpointer:
    def __init__(self, path: str, every: float = 1.0) -> None:
        self.path, self.every = path, every
        self._connection: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: asyncio.Future[None] | None = None  # the checkpoint in its thread, if any

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="sqlite-checkpoint")

    async def stop(self) -> None:
        """Stop, after the checkpoint in progress if any (its thread cannot be cancelled, and its connection must not
        be closed under it). The engine's connections close after this; SQLite checkpoints on the last close."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running is not None:
            with suppress(Exception):
                await self._running
            self._running = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            self._running = asyncio.ensure_future(asyncio.to_thread(self._checkpoint))
            try:
                await asyncio.shield(self._running)
            except sqlite3.Error as exc:  # e.g. the file went away: the next turn tries again
                log.warning("SQLite checkpoint failed: %s", exc)
            self._running = None

    def _checkpoint(self) -> None:
        """One PASSIVE checkpoint. Runs in a worker thread, one at a time (the loop awaits each before the next)."""
        if self._connection is None:
            # timeout=0: a checkpoint that finds another running returns at once (busy) and is tried next turn.
            self._connection = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
