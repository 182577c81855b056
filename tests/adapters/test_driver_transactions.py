"""Writing units begin and commit on the driver, on connections kept for them: SQLite's one writing connection
(``bot.adapters.sqlite_writer``), PostgreSQL's kept connections (``bot.adapters.pg_connections``). A unit whose
repositories use the session joins that transaction. Whatever a unit wrote, through either, is committed together
or not at all, and the next unit starts clean."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.exc import IntegrityError

from bot.adapters.db import Database
from bot.adapters.repository import DECISIONS
from bot.adapters.sqlite_writer import SqliteWriter
from bot.domain.values import Approver
from bot.service_layer import services


async def rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    """What another connection reads: only what was committed."""
    async with db.read_engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql))).all()]


def kept(db: Database) -> object:
    """The connection kept for the next writing unit."""
    if isinstance(db.kept, SqliteWriter):
        return db.kept._connection
    assert db.kept._free
    return db.kept._free[-1][0]  # (connection, when it was given back)


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
    connection = kept(db)
    await _audit(db, "only.driver")
    await _audit(db, "with.session", with_session="Ev1")
    assert kept(db) is connection  # kept, and taken again by the next unit

    assert await rows(db, "SELECT id, status FROM access_requests") == [(view.id, "PENDING")]
    assert {a for (a,) in await rows(db, "SELECT action FROM audit_log")} >= {"only.driver", "with.session"}
    assert await rows(db, "SELECT event_id FROM processed_events") == [("Ev1",)]
    assert not await services.first_delivery(uow=db.uow(), event_id="Ev1")  # Slack's retry of it: seen


@pytest.mark.parametrize("with_session", [None, "Ev2"], ids=["driver only", "session joined"])
async def test_a_unit_that_fails_leaves_nothing_and_the_next_one_commits(
    db: Database, with_session: str | None
) -> None:
    with pytest.raises(RuntimeError):
        await _audit(db, "failed", with_session=with_session, fail=True)
    await _audit(db, "next")

    assert await rows(db, "SELECT action FROM audit_log WHERE action IN ('failed', 'next')") == [("next",)]
    assert await rows(db, "SELECT event_id FROM processed_events") == []
    if with_session is not None:
        assert await services.first_delivery(uow=db.uow(), event_id=with_session)  # never recorded


async def test_a_unit_refused_by_the_database_rolls_back_and_the_next_one_commits(db: Database) -> None:
    assert await services.first_delivery(uow=db.uow(), event_id="Ev3")
    with pytest.raises(IntegrityError):
        async with db.uow() as uow:
            await uow.audit.record(action="dup", actor_id="UA", request_id=None, at=datetime.now(UTC), details={})
            await uow.driver.write_deferred()
            # Through the session, which joins the unit's transaction: a duplicate key fails the unit.
            await uow.session.execute(
                # The time typed, so that SQLite gets it as SQLAlchemy stores it (sqlite3's own datetime adapter is
                # deprecated since Python 3.12).
                text("INSERT INTO processed_events (event_id, received_at) VALUES ('Ev3', :at)").bindparams(
                    bindparam("at", type_=DateTime(timezone=True))
                ),
                {"at": datetime.now(UTC)},
            )
    await _audit(db, "after")
    assert await rows(db, "SELECT action FROM audit_log WHERE action IN ('dup', 'after')") == [("after",)]


async def test_what_a_unit_wrote_before_a_later_statement_failed_is_not_kept(db: Database) -> None:
    """On PostgreSQL a unit's transaction begins with its first write unless that write is its last statement (see
    ``bot.adapters.driver``): a write followed by anything is inside the transaction, whichever way the unit ends."""
    with pytest.raises(RuntimeError):
        async with db.uow() as uow:
            await uow.audit.record(
                action="then.failed", actor_id="UA", request_id=None, at=datetime.now(UTC), details={}
            )
            await uow.driver.write_deferred()  # written now; the unit goes on
            raise RuntimeError("the unit fails after a write")
    with pytest.raises(IntegrityError):
        async with db.uow() as uow:
            # As the unit commits: rows of two tables, the second refused (no such request).
            await uow.audit.record(
                action="then.refused", actor_id="UA", request_id=None, at=datetime.now(UTC), details={}
            )
            uow.driver.defer(
                DECISIONS,
                {
                    "request_id": "AR-NONE",
                    "approver_id": "UA",
                    "verdict": "APPROVE",
                    "reason": None,
                    "decided_at": datetime.now(UTC),
                },
            )
            await uow.commit()
    await _audit(db, "after")
    assert await rows(db, "SELECT action FROM audit_log WHERE action LIKE 'then.%' OR action = 'after'") == [("after",)]
