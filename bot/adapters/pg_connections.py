"""PostgreSQL connections kept for the writing units of a process, begun and committed on the driver.

A writing unit through a SQLAlchemy session paid ~100 us of CPU per unit for the session, the pool's checkout and
return, and two crossings into SQLAlchemy's greenlet, beside its statements. Here a unit takes a connection
kept open (``keep`` at most, more while a burst needs them), sends BEGIN and COMMIT on SQLAlchemy's asyncpg
adapter (as its own commit would), and gives the connection back. A unit whose repositories use the session joins
the transaction begun here: the adapter runs the session's statements inside it, and the session's commit or
rollback ends it.

A unit's transaction is begun when its first statement that needs one runs (see ``driver``): a unit whose one
write is its last statement sends neither BEGIN nor COMMIT (a new request's, for one). In the benchmark at 20 in
flight (8 alternating rounds): both DMs 42.4 -> 36.6 ms p50; acks and flows per second within this VM's noise.

A server restart (or a proxy dropping idle connections) shows when BEGIN fails on a dead connection: nothing has
been done yet, so the connections kept are dropped (they are as dead) and the unit begins again on a new one. So a
connection the event loop has seen closed, or one idle for longer than ``IDLE_CHECKED`` seconds (a proxy's idle
timeout is minutes; a restart closes connections at once), is begun at once, with that check; the others, in use
a moment ago, begin when their first statement needs it.
"""

from __future__ import annotations

import logging
import time
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.adapters.driver import commit_adapted
from bot.adapters.kept import Kept

log = logging.getLogger("bot.postgres")
IDLE_CHECKED = 1.0


class PgConnections:
    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self.engine, self.keep = engine, keep
        self._free: list[tuple[AsyncConnection, float]] = []  # and when each was given back

    async def begin(self) -> Kept:
        """A kept connection (or a new one) for a unit, its transaction (on SQLAlchemy's asyncpg adapter of it)
        begun now or when the unit's first statement needs it (``Kept.begin``)."""
        for attempt in (1, 2):
            connection, since = self._free.pop() if self._free else (await self.engine.connect(), time.monotonic())
            adapted: Any = connection.sync_connection.connection.dbapi_connection  # type: ignore[union-attr]
            end = partial(self._end, connection, adapted)
            if time.monotonic() - since < IDLE_CHECKED and not adapted._connection.is_closed():
                return Kept(connection, adapted._connection, connection.dialect, end, partial(_begin, adapted))
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
            return Kept(connection, adapted._connection, connection.dialect, end)
        raise AssertionError("unreachable")

    async def revive(self, dead: Kept) -> Kept:
        """A new connection in place of ``dead``'s (closed before its unit did anything); the kept ones are as dead."""
        log.warning("PostgreSQL: a kept connection was dropped; reconnecting")
        await self._discard(dead.connection)
        await self.close()
        return await self.begin()

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
        for connection, _ in free:
            await self._discard(connection)

    async def _keep(self, connection: AsyncConnection) -> None:
        if len(self._free) < self.keep and not connection.closed and not connection.invalidated:
            self._free.append((connection, time.monotonic()))
        else:
            await connection.close()

    @staticmethod
    async def _discard(connection: AsyncConnection) -> None:
        try:
            await connection.invalidate()
            await connection.close()
        except Exception:  # already gone: nothing to give back
            log.debug("PostgreSQL: closing a dropped connection failed", exc_info=True)


async def _begin(adapted: Any) -> None:
    """BEGIN, unless a transaction is open (one the unit's session began on the adapter)."""
    if adapted._transaction is None:
        await adapted._start_transaction()
