from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlmodel import SQLModel

from bot.adapters.db import Database
from tests.conftest import TABLES
from tests.databases import create_pg_database, drop_pg_database, pg_url, require_postgres, sqlite_url


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def _empty_to_head(url: str) -> None:
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            assert await conn.run_sync(lambda c: inspect(c).get_table_names()) == []
        await db.upgrade()
        await db.upgrade()  # a second start finds nothing to do
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            assert set(TABLES) | {"alembic_version"} <= tables
            assert (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            assert await conn.run_sync(_differences) == []
    finally:
        await db.dispose()


async def test_sqlite_empty_to_head_matches_models(tmp_path: object) -> None:
    await _empty_to_head(sqlite_url(f"{tmp_path}/fresh.db"))


async def test_postgres_empty_to_head_matches_models() -> None:
    require_postgres()
    import asyncio

    name = await asyncio.to_thread(create_pg_database)
    try:
        await _empty_to_head(pg_url(name))
    finally:
        await asyncio.to_thread(drop_pg_database, name)


async def test_sqlite_connection_settings(tmp_path: object) -> None:
    db = Database(sqlite_url(f"{tmp_path}/s.db"))
    try:
        async with db.engine.connect() as conn:
            pragmas = {
                p: (await conn.execute(text(f"PRAGMA {p}"))).scalar_one()
                for p in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
        # SQLite's own busy timeout is off: waiting for a lock is done outside SQLite (tests/adapters).
        assert pragmas == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 0, "foreign_keys": 1}
    finally:
        await db.dispose()


def test_in_memory_sqlite_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="in-memory SQLite"):
        Database("sqlite+aiosqlite:///:memory:")
