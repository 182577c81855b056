"""PostgreSQL connections kept for the writing units of a process, begun and committed on the driver.

A writing unit through a SQLAlchemy session paid ~100 us of CPU per unit for the session, the pool's checkout and
return, and two crossings into SQLAlchemy's greenlet, beside its statements. Here a unit takes a connection
kept open (``keep`` at most, more while a burst needs them), sends BEGIN and COMMIT on SQLAlchemy's asyncpg
adapter (as its own commit would), and gives the connection back. A unit whose repositories use the session joins
the transaction begun here: the adapter runs the session's statements inside it, and the session's commit or
rollback ends it.

A server restart (or a proxy dropping idle connections) shows when BEGIN fails on a dead connection: nothing has
been done yet, so the connections kept are dropped (they are as dead) and the unit begins again on a new one.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.adapters.driver import commit_adapted
from bot.adapters.kept import Kept

log = logging.getLogger("bot.postgres")


class PgConnections:
    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self.engine, self.keep = engine, keep
        self._free: list[AsyncConnection] = []

    async def begin(self) -> Kept:
        """A kept connection (or a new one) with a transaction begun on SQLAlchemy's asyncpg adapter of it."""
        for attempt in (1, 2):
            connection = self._free.pop() if self._free else await self.engine.connect()
            adapted: Any = connection.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
            try:
                await adapted._start_transaction()
            except Exception as exc:
                dead = connection.dialect.is_disconnect(exc, adapted, None)  # type: ignore[arg-type]
                await self._discard(connection)
                if attempt == 2 or not dead:
                    raise
                log.warning("PostgreSQL: a kept connection was dropped; reconnecting")
                await self.close()  # the others are as dead
                continue
            return Kept(connection, adapted._connection, connection.dialect, partial(self._end, connection, adapted))
        raise AssertionError("unreachable")

    async def _end(self, connection: AsyncConnection, adapted: Any, commit: bool) -> None:
        """COMMIT (as the adapter's own commit would) or roll back what is still open (a session that joined may
        have ended it already), then keep the connection; one that fails to roll back is dropped."""
        if commit and adapted._transaction is not None:
            try:
                await commit_adapted(adapted)
            except BaseException:
                await self._discard(connection)
                raise
        try:
            if adapted._transaction is not None:
                await adapted._call_and_discard(adapted._transaction.rollback)
        except Exception:
            await self._discard(connection)
            return
        await self._keep(connection)

    async def close(self) -> None:
        free, self._free = self._free, []
        for connection in free:
            await self._discard(connection)

    async def _keep(self, connection: AsyncConnection) -> None:
        if len(self._free) < self.keep and not connection.closed and not connection.invalidated:
            self._free.append(connection)
        else:
            await connection.close()

    @staticmethod
    async def _discard(connection: AsyncConnection) -> None:
        try:
            await connection.invalidate()
            await connection.close()
        except Exception:  # already gone: nothing to give back
            log.debug("PostgreSQL: closing a dropped connection failed", exc_info=True)
