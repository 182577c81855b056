"""On SQLite the writing units of a process share one connection, begun and committed on the driver
(``bot.adapters.sqlite_writer``); a unit whose repositories use the session joins that transaction. Whatever a
unit wrote, through either, is committed together or not at all, and the next unit starts clean."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.adapters.db import Database
from bot.domain.values import Approver
from bot.service_layer import services
from tests.databases import sqlite_url


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(sqlite_url(tmp_path / "bot.db"))
    await database.upgrade()
    try:
        yield database
    finally:
        await database.dispose()


def rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    """What another connection reads from the file: only what was committed."""
    assert db.writer is not None
    conn = sqlite3.connect(str(db.writer.engine.url.database))
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def _audit(db: Database, action: str, *, with_session: str | None = None, fail: bool = False) -> None:
    async with db.uow() as uow:
        await uow.audit.record(action=action, actor_id="UA", request_id=None, at=datetime.now(UTC), details={})
        if with_session is not None:
            assert await uow.deliveries.first_time(with_session, at=datetime.now(UTC))  # the ORM: the session
        if fail:
            raise RuntimeError("the unit fails before its commit")
        await uow.commit()


async def test_units_share_the_writers_connection_and_commit_through_the_driver_or_the_session(db: Database) -> None:
    view = await services.create_request(
        uow=db.uow(), requester_id="UREQ", resource="db", justification="j", approvers=[Approver("UA"), Approver("UB")]
    )
    assert db.writer is not None
    connection = db.writer._connection
    await _audit(db, "only.driver")
    await _audit(db, "with.session", with_session="Ev1")
    assert db.writer._connection is connection  # one connection for every writing unit

    assert rows(db, "SELECT id, status FROM access_requests") == [(view.id, "PENDING")]
    assert {a for (a,) in rows(db, "SELECT action FROM audit_log")} >= {"only.driver", "with.session"}
    assert rows(db, "SELECT event_id FROM processed_events") == [("Ev1",)]
    assert not await services.first_delivery(uow=db.uow(), event_id="Ev1")  # Slack's retry of it: seen


@pytest.mark.parametrize("with_session", [None, "Ev2"], ids=["driver only", "session joined"])
async def test_a_unit_that_fails_leaves_nothing_and_the_next_one_commits(
    db: Database, with_session: str | None
) -> None:
    with pytest.raises(RuntimeError):
        await _audit(db, "failed", with_session=with_session, fail=True)
    await _audit(db, "next")

    assert rows(db, "SELECT action FROM audit_log WHERE action IN ('failed', 'next')") == [("next",)]
    assert rows(db, "SELECT event_id FROM processed_events") == []
    if with_session is not None:
        assert await services.first_delivery(uow=db.uow(), event_id=with_session)  # never recorded


async def test_a_unit_refused_by_the_database_rolls_back_and_the_writer_goes_on(db: Database) -> None:
    assert await services.first_delivery(uow=db.uow(), event_id="Ev3")
    with pytest.raises(Exception, match="UNIQUE"):
        async with db.uow() as uow:
            await uow.audit.record(action="dup", actor_id="UA", request_id=None, at=datetime.now(UTC), details={})
            await uow.driver.write_deferred()
            # Through the session, which joins the unit's transaction: a duplicate key fails the unit.
            await uow.session.execute(text("INSERT INTO processed_events (event_id, received_at) VALUES ('Ev3', 0)"))
    await _audit(db, "after")
    assert rows(db, "SELECT action FROM audit_log WHERE action IN ('dup', 'after')") == [("after",)]
