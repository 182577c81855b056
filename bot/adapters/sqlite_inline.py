"""aiosqlite connections whose calls run on the event loop's own thread.

aiosqlite gives every connection a worker thread and hands each call to it through a queue; SQLAlchemy's
adapter makes about four such calls per statement (cursor, execute, fetch, close). Each hand-off costs a
queue put, a thread wake-up, a ``call_soon_threadsafe`` and a self-pipe write, which under load cost more CPU
than the SQLite call itself: a statement on a WAL database with ``synchronous=NORMAL`` takes microseconds and
does not wait for the disk. Measured on the Slack path, running them inline halved the bot's CPU per request.
The connection keeps aiosqlite's interface, which SQLAlchemy's ``sqlite+aiosqlite`` dialect drives.

This relies on aiosqlite's internals (its ``_tx`` queue, ``_execute`` and ``_connect``), so pyproject.toml pins
the aiosqlite series it was written against; tests/adapters covers it, and every test runs on it.

A call must never wait inside SQLite, since that would stop the event loop: the connections have SQLite's
busy timeout off, and when the database is locked by another connection (a second engine, an admin command,
another process) the call is retried after an ``asyncio.sleep`` until ``timeout`` has passed.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite

_BUSY_SNAPSHOT = 517  # a deferred reader that tries to write after another writer: waiting cannot help


class _RunNow:
    """Stands in for aiosqlite's queue to its worker thread: runs each call as it is queued."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller, as aiosqlite's thread does
            if future is not None:
                future.set_exception(exc)
        else:
            if future is not None:
                future.set_result(result)


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_BUSY)
    return code & 0xFF == sqlite3.SQLITE_BUSY and code != _BUSY_SNAPSHOT


class InlineConnection(aiosqlite.Connection):
    def __init__(self, connector: Callable[[], sqlite3.Connection], timeout: float) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunNow()  # type: ignore[assignment]
        self._busy_timeout = timeout

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # connect without starting the worker thread

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` now; while the database is locked, sleep (letting the loop run) and try again."""
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        deadline, pause = time.monotonic() + self._busy_timeout, 0.001
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if not _busy(exc) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)


def connector(path: str, timeout: float) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: a new inline connection to the file at ``path``,
    waiting up to ``timeout`` seconds for a lock held elsewhere."""

    async def connect() -> aiosqlite.Connection:
        open_file = partial(sqlite3.connect, path, timeout=0, isolation_level=None, check_same_thread=False)
        return await InlineConnection(open_file, timeout)

    return connect
