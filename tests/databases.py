"""Real databases for tests: a SQLite file per test, and a PostgreSQL database per test session."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.adapters.repository import APPROVERS, AUDIT, OUTBOX, REQUESTS

PG_HOST, PG_PORT, PG_ADMIN_DB = "127.0.0.1", 5432, "test"
PG_USER = os.environ.get("PGUSER", "postgres")


def postgres_available() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Fail in CI, skip elsewhere, when PostgreSQL is not there."""
    if postgres_available():
        return
    reason = f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} (database {PG_ADMIN_DB!r}, trust auth)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI requires it")
    pytest.skip(reason)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database() -> str:
    name = f"bot_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return name


def drop_pg_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pg_url(name: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def sqlite_url(path: os.PathLike[str] | str) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def rows_about_requests(engine: AsyncEngine) -> dict[str, int]:
    """How many rows the tables written when a request is made hold, but the audit log: the requests, their
    approvers and their notices."""
    async with engine.connect() as conn:
        return {
            table.name: (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
            for table in (REQUESTS, APPROVERS, OUTBOX)
        }


async def audit_entries(engine: AsyncEngine) -> list[tuple[str, dict[str, Any]]]:
    """Every audit entry's action and details, oldest first."""
    async with engine.connect() as conn:
        found = await conn.execute(sa.select(AUDIT.c.action, AUDIT.c.details).order_by(AUDIT.c.id))
        return [(row.action, row.details) for row in found]
