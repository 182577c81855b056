"""The database a bot process uses: its engine, session factory and Unit of Work factory."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.adapters import migrate
from bot.adapters.database import create_engine, create_session_factory, is_sqlite
from bot.service_layer.unit_of_work import Handover, SqlUnitOfWork


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(url)
        self.session_factory = create_session_factory(self.engine)
        self._write_lock = asyncio.Lock() if is_sqlite(url) else None
        self.read_engine: AsyncEngine = create_engine(url, read_only=True)  # for units that only read
        self.read_session_factory = create_session_factory(self.read_engine)
        self.handover: Handover | None = None  # the outbox dispatcher, which units hand their notices to

    def uow(self) -> SqlUnitOfWork:
        """A new Unit of Work; pass this method where a UoW factory is wanted."""
        return SqlUnitOfWork(self.session_factory, self._write_lock, self.handover, self.read_session_factory)

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def upgrade(self) -> None:
        await migrate.upgrade(self.engine)

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.read_engine.dispose()
