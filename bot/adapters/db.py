"""The database a bot process uses: its engine, session factory and Unit of Work factory."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.adapters import migrate
from bot.adapters.database import create_engine, create_session_factory, is_sqlite
from bot.adapters.pg_connections import PgConnections
from bot.adapters.sqlite_checkpoint import Checkpointer
from bot.adapters.sqlite_writer import SqliteWriter
from bot.service_layer.unit_of_work import Handover, SqlUnitOfWork


class Database:
    """``background_checkpoints`` (SQLite; the bot's own process): the log is checkpointed by a task started with
    ``start``, not inside commits on the event loop (see ``sqlite_checkpoint``)."""

    def __init__(self, url: str, *, background_checkpoints: bool = False) -> None:
        self.url = url
        sqlite = is_sqlite(url)
        path = make_url(url).database if sqlite else None
        self.checkpointer = Checkpointer(path) if background_checkpoints and path else None
        self.engine: AsyncEngine = create_engine(url, checkpoints_elsewhere=self.checkpointer is not None)
        self.session_factory = create_session_factory(self.engine)
        self._write_lock = asyncio.Lock() if sqlite else None
        # The writing units' connections: SQLite's one, or PostgreSQL's, kept (as many as the pool keeps open).
        self.kept: SqliteWriter | PgConnections = (
            SqliteWriter(self.engine) if sqlite else PgConnections(self.engine, keep=self.engine.pool.size())  # type: ignore[attr-defined]
        )
        self.read_engine: AsyncEngine = create_engine(url, read_only=True)  # for units that only read
        self.read_session_factory = create_session_factory(self.read_engine)
        self.handover: Handover | None = None  # the outbox dispatcher, which units hand their notices to

    def uow(self) -> SqlUnitOfWork:
        """A new Unit of Work; pass this method where a UoW factory is wanted."""
        return SqlUnitOfWork(self.kept, self.read_session_factory, write_lock=self._write_lock, handover=self.handover)

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def upgrade(self) -> None:
        await migrate.upgrade(self.engine)

    def start(self) -> None:
        """Start the background work the database needs while the bot runs (SQLite's checkpoints)."""
        if self.checkpointer is not None:
            self.checkpointer.start()

    async def dispose(self) -> None:
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        await self.kept.close()
        await self.engine.dispose()
        await self.read_engine.dispose()
