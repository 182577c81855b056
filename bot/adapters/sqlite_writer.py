"""SQLite's one writing connection of a process, begun and committed straight on the driver.

SQLite has one writer at a time, and the Unit of Work lets one writing unit run at a time in a process (its write
lock). So the writing units share one connection, kept open, and begin (IMMEDIATE), commit and roll back on the
driver: through a SQLAlchemy session each unit's checkout, BEGIN and commit cost ~100 us of CPU (greenlet
crossings, pool and transaction bookkeeping) against ~80 us for SQLite's own commit, and a unit whose statements
all run through ``Driver`` needs no more of SQLAlchemy. A unit that uses its session (statements built per call,
the ORM) joins the transaction begun here: the connection hooks in ``database`` send no BEGIN while one is open,
and the session's commit or rollback ends it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.adapters.driver import translated
from bot.adapters.kept import Kept


class SqliteWriter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._connection: AsyncConnection | None = None
        self._opening = asyncio.Lock()

    async def begin(self) -> Kept:
        """BEGIN IMMEDIATE on the writing connection (opened on first use). Its driver connection is
        ``sqlite_inline``'s, which waits for a lock held elsewhere without blocking the loop."""
        if self._connection is None:
            async with self._opening:
                if self._connection is None:
                    self._connection = await self.engine.connect()
        connection = self._connection
        driver = connection.sync_connection.connection.driver_connection  # type: ignore[union-attr]
        await self._run(driver, "BEGIN IMMEDIATE")
        return Kept(connection, driver, connection.dialect, partial(self._end, driver))

    async def revive(self, dead: Kept) -> Kept:
        raise NotImplementedError("SQLite's writing connection is a file: it does not drop")

    async def _end(self, driver: Any, commit: bool) -> None:
        if commit:
            try:
                await self._run(driver, "COMMIT")
                return
            except BaseException:
                await self._rollback(driver)
                raise
        await self._rollback(driver)

    async def _rollback(self, driver: Any) -> None:
        """Roll back what is still open (a session that joined may have ended it already)."""
        if driver._conn is not None and driver._conn.in_transaction:
            await self._run(driver, "ROLLBACK")

    async def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()

    @staticmethod
    async def _run(driver: Any, sql: str) -> None:
        try:
            await driver._execute(driver._conn.execute, sql)
        except sqlite3.Error as exc:
            raise translated(exc, sql, ()) from exc
