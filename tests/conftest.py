from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import text

from bot.adapters.db import Database
from tests.databases import create_pg_database, drop_pg_database, pg_url, require_postgres, sqlite_url

TABLES = [
    "decisions",
    "request_approvers",
    "slack_messages",
    "audit_log",
    "processed_events",
    "access_requests",
    "outbox",
]


@pytest.fixture(scope="session")
def pg_migrated_url() -> Iterator[str]:
    """One PostgreSQL database for the test session, migrated to head once."""
    require_postgres()
    name = create_pg_database()
    url = pg_url(name)

    async def migrate() -> None:
        db = Database(url)
        await db.upgrade()
        await db.dispose()

    asyncio.run(migrate())
    yield url
    drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path_factory.mktemp("db") / "bot.db")
    url: str = request.getfixturevalue("pg_migrated_url")
    return url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await database.upgrade()
    if database.engine.dialect.name == "postgresql":
        async with database.engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield database
    await database.dispose()
