"""A PostgreSQL server may restart (or a proxy drop idle connections) between two units of work: the next unit
must still succeed, on a fresh connection, without anyone seeing an error."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import text

from bot.adapters.db import Database
from bot.domain.values import Approver
from bot.service_layer import services
from tests.databases import (
    PG_ADMIN_DB,
    PG_HOST,
    PG_PORT,
    PG_USER,
    _admin,
    create_pg_database,
    drop_pg_database,
    pg_url,
    require_postgres,
)


async def _new_request(db: Database, n: int) -> str:
    view = await services.create_request(
        uow=db.uow(),
        requester_id="UREQ",
        requester_name="Riley",
        resource=f"prod-db-{n}",
        justification="incident 42",
        approvers=[Approver("UALICE", "Alice"), Approver("UBOB", "Bob")],
    )
    return view.id


@asynccontextmanager
async def _database_with_a_request() -> AsyncIterator[tuple[Database, str, str]]:
    """A database of its own (its name) with one request stored (its id)."""
    require_postgres()
    name = await asyncio.to_thread(create_pg_database)
    db = Database(pg_url(name))
    try:
        await db.upgrade()
        yield db, name, await _new_request(db, 1)
    finally:
        await db.dispose()
        await asyncio.to_thread(drop_pg_database, name)


async def test_units_survive_their_pooled_connections_being_dropped() -> None:
    async with _database_with_a_request() as (db, name, first):
        assert (await services.get(uow=db.uow(), request_id=first)).status.value == "PENDING"
        # Every connection the bot's pools hold is cut, as a server restart would.
        cut = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"  # noqa: S608 (our name)
        await _admin(cut)
        second = await _new_request(db, 2)  # a writing unit
        assert (await services.get(uow=db.uow(), request_id=second)).resource == "prod-db-2"  # a reading unit
        page = await services.list_requests(uow=db.uow(), requester_id="UREQ")
        assert {v.id for v in page.items} == {first, second}


def _cut_unseen(name: str) -> None:
    """Terminate the database's connections from another thread, this one (and its event loop) blocked until they
    are gone: a server restart the bot has not noticed yet, its kept connections look open until their next
    statement."""
    cutting = threading.Thread(target=_cut, args=(name,))
    cutting.start()
    cutting.join()


def _cut(name: str) -> None:
    cut = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"  # noqa: S608 (our name)
    asyncio.run(_admin(cut))
    left = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"  # noqa: S608 (our name)
    for _ in range(100):  # until the server has ended them
        if asyncio.run(_count(left)) == 0:
            return
        time.sleep(0.01)


async def _count(sql: str) -> int:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_a_unit_whose_connection_died_unnoticed_runs_once_on_a_new_one() -> None:
    """A unit on a connection used a moment ago does not send BEGIN first (see pg_connections): its first
    statement is what finds the connection dead. Nothing was done on it, so that statement runs again on a new
    connection; the request is stored once."""
    async with _database_with_a_request() as (db, name, _):
        assert db.kept._free and not db.kept._free[-1][0].sync_connection.connection.driver_connection.is_closed()
        _cut_unseen(name)
        kept = db.kept._free[-1][0].sync_connection.connection.driver_connection
        assert not kept.is_closed()  # not noticed yet
        second = await _new_request(db, 2)
        assert kept.is_closed()  # the unit found it dead...
        page = await services.list_requests(uow=db.uow(), requester_id="UREQ")
        assert sorted(v.resource for v in page.items) == ["prod-db-1", "prod-db-2"]  # ...and stored its request once
        assert (await services.get(uow=db.uow(), request_id=second)).status.value == "PENDING"


async def test_a_write_run_alone_is_not_run_again_on_a_new_connection() -> None:
    """A unit whose one statement is its write sends it without BEGIN: if its connection is then found closed, the
    server may have committed it before the connection went, so the unit fails instead of writing it twice; the
    next unit runs on a new connection."""
    async with _database_with_a_request() as (db, name, _):
        _cut_unseen(name)
        with pytest.raises(Exception) as e:  # whatever the driver raises for a closed connection
            await services.record_refusal(
                uow=db.uow(), actor_id="UEVE", action="status", request_id=None, message="not yours"
            )
        assert "closed" in str(e.value)  # the connection, not the statement
        await _new_request(db, 2)
        page = await services.list_requests(uow=db.uow(), requester_id="UREQ")
        assert sorted(v.resource for v in page.items) == ["prod-db-1", "prod-db-2"]


async def test_writing_units_plan_once_and_reading_units_plan_for_their_values() -> None:
    """Writing units look rows up by key: their statements keep one generic plan (a decision's carries ~70
    parameters, which PostgreSQL would otherwise plan at every run). Reading units search (whose requests await
    this approver?), where a plan for the values at hand is ten times faster at 100k requests."""
    async with _database_with_a_request() as (db, _, request_id):
        async with db.uow() as uow:  # a writing unit, on one of the kept connections
            await uow.requests.get(request_id)
            writing = await uow.session.execute(text("SHOW plan_cache_mode"))
            assert writing.scalar_one() == "force_generic_plan"
        async with db.read_engine.connect() as reading:
            assert (await reading.execute(text("SHOW plan_cache_mode"))).scalar_one() == "force_custom_plan"
