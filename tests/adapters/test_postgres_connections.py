"""A PostgreSQL server may restart (or a proxy drop idle connections) between two units of work: the next unit
must still succeed, on a fresh connection, without anyone seeing an error."""

from __future__ import annotations

import asyncio

from bot.adapters.db import Database
from bot.domain.values import Approver
from bot.service_layer import services
from tests.databases import _admin, create_pg_database, drop_pg_database, pg_url, require_postgres


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


async def test_units_survive_their_pooled_connections_being_dropped() -> None:
    require_postgres()
    name = await asyncio.to_thread(create_pg_database)
    db = Database(pg_url(name))
    try:
        await db.upgrade()
        first = await _new_request(db, 1)
        assert (await services.get(uow=db.uow(), request_id=first)).status.value == "PENDING"
        # Every connection the bot's pools hold is cut, as a server restart would.
        cut = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"  # noqa: S608 (our name)
        await _admin(cut)
        second = await _new_request(db, 2)  # a writing unit
        assert (await services.get(uow=db.uow(), request_id=second)).resource == "prod-db-2"  # a reading unit
        page = await services.list_requests(uow=db.uow(), requester_id="UREQ")
        assert {v.id for v in page.items} == {first, second}
    finally:
        await db.dispose()
        await asyncio.to_thread(drop_pg_database, name)
