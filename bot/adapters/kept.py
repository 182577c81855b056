"""A transaction begun on a connection kept for writing units (``sqlite_writer``, ``pg_connections``).

A unit runs its hot statements on ``driver`` (see ``driver.Driver.use``); a unit whose repositories use the
session binds it to ``connection``, and the session joins the transaction begun there. ``end`` commits (or rolls
back what is still open) and gives the connection back to be kept. ``begin``, when set, is a transaction not begun
yet (PostgreSQL, see ``pg_connections``): the driver begins it before the first statement that needs one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Kept:
    connection: AsyncConnection  # SQLAlchemy's, which a unit's session joins
    driver: Any  # the driver's own connection, for the unit's hot statements
    dialect: Dialect
    end: Callable[[bool], Awaitable[None]]  # True: COMMIT; False: roll back what is open. Then kept again.
    begin: Callable[[], Awaitable[None]] | None = None  # BEGIN, when the unit's transaction is not begun yet


class KeptConnections(Protocol):
    async def begin(self) -> Kept: ...

    async def revive(self, dead: Kept) -> Kept:
        """A new connection in place of ``dead``'s, found closed before anything was done on it."""
        ...

    async def close(self) -> None: ...
