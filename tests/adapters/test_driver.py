"""The driver path (bot/adapters/driver.py) gives what SQLAlchemy's own execution gives, on SQLite and
PostgreSQL, and runs inside the unit's transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.adapters import driver as driver_module
from bot.adapters import outbox, repository
from bot.adapters.db import Database
from bot.adapters.driver import Driver
from bot.domain.values import Approver
from bot.service_layer import delivery, services

ALICE, BOB = Approver("UALICE", "Alice", "alice@example.com"), Approver("UBOB", "Bob")

CLEAR_AWAITING = (
    sa.update(repository.APPROVERS)
    .where(repository.APPROVERS.c.request_id.in_(sa.bindparam("ids", expanding=True)))
    .values(awaiting=False)
)
DECISIONS_OF = sa.select(repository.DECISIONS).where(
    repository.DECISIONS.c.request_id.in_(sa.bindparam("ids", expanding=True))
)


async def _request(db: Database, resource: str = "prod-db") -> str:
    view = await services.create_request(
        uow=db.uow(),
        requester_id="UREQ",
        resource=resource,
        justification="Incident 42 — «naïve» <b>&",
        approvers=[ALICE, BOB],
        duration_minutes=90,
    )
    return view.id


async def test_rows_are_those_sqlalchemy_gives(db: Database) -> None:
    rid = await _request(db)
    await services.approve(uow=db.uow(), request_id=rid, approver_id="UALICE", reason="ok")
    dialect = db.engine.dialect.name
    statements = [
        (repository._GET, {"b_id": rid}),  # text, integers, datetimes
        (repository._APPROVERS_OF[dialect], {"ids": [rid]}),  # booleans (awaiting)
        (repository._BOTH[dialect], {"named": [rid], "ids": [rid]}),  # a union: types from its first part
        (outbox.DUE, {"now": datetime.now(UTC), "limit": 10}),  # JSON (details)
        (sa.select(repository.AUDIT).order_by(repository.AUDIT.c.id), {}),
    ]
    session = db.session_factory()
    try:
        for statement, params in statements:
            expected = [tuple(r) for r in (await session.execute(statement, params)).all()]
            got = [tuple(r) for r in await Driver(session).rows(statement, params)]
            assert got == expected and expected, statement
        rows = await Driver(session).rows(repository._GET, {"b_id": rid})
        assert rows[0].duration_minutes == 90 and rows[0].justification == "Incident 42 — «naïve» <b>&"
    finally:
        await session.close()


async def test_in_lists_of_every_length(db: Database) -> None:
    ids = [await _request(db, f"r{i}") for i in range(3)]
    many = [*ids, *(f"AR-NONE{i:04d}" for i in range(40))]  # longer than the lists whose SQL is kept
    session = db.session_factory()
    try:
        driver = Driver(session)
        for wanted in ([ids[0]], ids, [], ids[1:], [ids[2]], ids, many, many):
            rows = await driver.rows(repository._BY_IDS, {"ids": wanted})
            assert sorted(r.id for r in rows) == sorted(i for i in wanted if i in ids)
    finally:
        await session.close()


async def test_in_lists_take_a_handful_of_shapes(db: Database) -> None:
    """An IN list is padded to a power of two with its last value: lists of 1 to 43 values make 7 statements, not
    43 (on PostgreSQL each is parsed, planned and prepared in a round trip of its own), and an UPDATE still
    touches each listed row once."""
    ids = [await _request(db, f"r{i}") for i in range(3)]
    session = db.session_factory()
    try:
        driver = Driver(session)
        for n in range(1, 44):
            wanted = [*ids, *(f"AR-NONE{i:04d}" for i in range(40))][:n]
            assert await driver.execute(CLEAR_AWAITING, {"ids": wanted}) == 2 * min(n, 3)  # two approvers each
        prepared = driver_module._PREPARED[(id(CLEAR_AWAITING), db.engine.dialect.name, ("ids",))]
        assert sorted(prepared._expanded) == [(1,), (2,), (4,), (8,), (16,), (32,), (64,)]
    finally:
        await session.close()


async def test_a_duplicate_is_sqlalchemys_integrity_error(db: Database) -> None:
    rid = await _request(db)
    decision = {"request_id": rid, "approver_id": "UALICE", "verdict": "APPROVE", "reason": None}
    insert = sa.insert(repository.DECISIONS)
    session = db.session_factory()
    try:
        driver = Driver(session)
        await driver.execute_many(insert, [{**decision, "decided_at": datetime.now(UTC)}])
        with pytest.raises(IntegrityError):
            await driver.execute_many(insert, [{**decision, "decided_at": datetime.now(UTC)}])
    finally:
        await session.close()


async def test_a_deferred_duplicate_fails_the_statement_it_rides_with(db: Database) -> None:
    rid = await _request(db)
    decision = {"request_id": rid, "approver_id": "UALICE", "verdict": "APPROVE", "reason": None}
    stay = {"b_id": rid, "b_was": "PENDING", "b_status": "PENDING", "b_at": datetime.now(UTC)}
    session = db.session_factory()
    try:
        driver = Driver(session)
        driver.defer(repository.DECISIONS, {**decision, "decided_at": datetime.now(UTC)})
        assert await driver.execute(repository._MOVE_STATUS, stay) == 1  # carries the decision along
        [row] = await driver.rows(DECISIONS_OF, {"ids": [rid]})
        assert (row.approver_id, row.verdict) == ("UALICE", "APPROVE")
        driver.defer(repository.DECISIONS, {**decision, "decided_at": datetime.now(UTC)})
        with pytest.raises(IntegrityError):
            await driver.execute(repository._MOVE_STATUS, stay)
    finally:
        await session.close()


async def test_a_query_sees_the_rows_deferred_before_it(db: Database) -> None:
    rid = await _request(db)
    decision = {"request_id": rid, "approver_id": "UBOB", "verdict": "DENY", "reason": "no"}
    session = db.session_factory()
    try:
        driver = Driver(session)
        driver.defer(repository.DECISIONS, {**decision, "decided_at": datetime.now(UTC)})
        [row] = await driver.rows(DECISIONS_OF, {"ids": [rid]})  # written first, then read
        assert (row.approver_id, row.verdict) == ("UBOB", "DENY")
    finally:
        await session.close()


async def test_statements_are_part_of_the_units_transaction(db: Database) -> None:
    rid = await _request(db)

    async def audited() -> list[str]:
        return [e.action for e in await services.audit_trail(uow=db.uow(), request_id=rid)]

    before = await audited()
    uow = db.uow()
    async with uow:
        await uow.audit.record(action="test.dropped", actor_id=None, request_id=rid, details={}, at=datetime.now(UTC))
        # not committed: rolled back with the unit
    assert await audited() == before
    async with uow:
        await uow.audit.record(action="test.kept", actor_id=None, request_id=rid, details={}, at=datetime.now(UTC))
        await uow.commit()
    assert await audited() == [*before, "test.kept"]


async def test_updates_report_the_rows_they_touched(db: Database) -> None:
    rid = await _request(db)
    now = datetime.now(UTC)
    session = db.session_factory()
    try:
        driver = Driver(session)
        moved = {"b_id": rid, "b_was": "PENDING", "b_status": "CANCELLED", "b_at": now}
        assert await driver.execute(repository._MOVE_STATUS, moved) == 1
        assert await driver.execute(repository._MOVE_STATUS, moved) == 0  # no longer PENDING
        await session.rollback()
    finally:
        await session.close()
    assert (await services.get(uow=db.uow(), request_id=rid)).status.value == "PENDING"
    # What the outbox queued for the request is there, whatever path wrote it.
    entries = await delivery.outbox_entries(uow=db.uow(), statuses=("pending",))
    assert {e.action for e in entries if e.request_id == rid} == {"post_dm", "post_channel"}


async def test_audit_entries_ride_along_with_the_units_next_statement(db: Database) -> None:
    """Audit entries are deferred (on PostgreSQL they go inside the unit's next statement): each is stored once,
    in the order recorded, with the unit; a unit that only audits stores its entries; a unit rolled back none;
    a unit reading the log sees its own entries."""
    rid = await _request(db)
    await services.approve(uow=db.uow(), request_id=rid, approver_id="UALICE", reason="ok")
    await services.approve(uow=db.uow(), request_id=rid, approver_id="UBOB", reason="fine")  # 2 entries, 1 unit
    await services.record_refusal(uow=db.uow(), action="approve", actor_id="UEVE", request_id=rid, message="no")
    uow = db.uow()
    async with uow:
        await uow.audit.record(action="test.dropped", actor_id="UX", request_id=rid, details={}, at=datetime.now(UTC))
        await uow.audit.record(action="test.seen", actor_id="UX", request_id=rid, details={}, at=datetime.now(UTC))
        seen = [e.action for e in await uow.audit.for_request(rid)]
        await uow.rollback()
    assert seen[-2:] == ["test.dropped", "test.seen"]
    trail = [(e.action, e.actor_id) for e in await services.audit_trail(uow=db.uow(), request_id=rid)]
    assert trail == [
        ("request.created", "UREQ"),
        ("decision.approve", "UALICE"),
        ("decision.approve", "UBOB"),
        ("status.approved", "UBOB"),
        ("refused.approve", "UEVE"),
    ]


async def test_a_statement_touching_a_deferred_rows_table_goes_after_them(db: Database) -> None:
    """A statement does not see what its own CTEs write: deferred approver rows must be in before an UPDATE of
    the approvers' flags (here the one that rides in the status move on PostgreSQL)."""
    rid = await _request(db)
    carol = {"request_id": rid, "position": 2, "user_id": "UCAROL", "display_name": "Carol", "email": None}
    stay = {"b_id": rid, "b_was": "PENDING", "b_status": "PENDING", "b_at": datetime.now(UTC)}
    session = db.session_factory()
    try:
        driver = Driver(session)
        driver.defer(repository.APPROVERS, {**carol, "awaiting": True})
        if db.engine.dialect.name == "postgresql":  # the flags' UPDATE is a CTE of the status move
            flags, params = repository._MOVE_WITH[id(repository._DECIDED)], {**stay, "b_users": ["UCAROL"]}
        else:
            flags, params = repository._DECIDED, {"b_id": rid, "b_users": ["UCAROL"]}
        assert await driver.execute(flags, params) == 1
        found = await session.execute(
            sa.select(repository.APPROVERS.c.awaiting).where(repository.APPROVERS.c.user_id == "UCAROL")
        )
        assert found.scalar_one() is False
    finally:
        await session.close()


async def test_rows_that_keep_existing_ones_ride_along_once_each(db: Database) -> None:
    """Rows that keep a row already there (where messages were posted) ride along with the unit's next statement:
    new rows are stored once each, a key already there is kept as it was, whatever the number of rows. On
    PostgreSQL they go as one array per column, so that any number of rows is the same statement (a VALUES list was
    a statement per number of rows, parsed, planned and prepared anew)."""
    rid = await _request(db)
    at = datetime.now(UTC)
    posted = [{"request_id": rid, "purpose": f"dm:U{i}", "channel_id": f"DU{i}", "ts": f"1.{i}"} for i in range(40)]
    session = db.session_factory()
    try:
        driver = Driver(session)
        driver.defer(repository.MESSAGES, {**posted[0], "posted_at": at}, keep_existing=True)
        await driver.write_deferred()
        riding_before = set(driver_module._RIDING)
        done = 1
        for count in (1, 3, 4, 17, 18):  # each batch ends with a key stored already
            batch = [*posted[done : done + count - 1], {**posted[0], "ts": "9.9"}]
            for row in batch:
                driver.defer(repository.MESSAGES, {**row, "posted_at": at}, keep_existing=True)
            await driver.rows(repository._GET, {"b_id": rid})  # on PostgreSQL they ride along with it
            done += count - 1
        stored = await session.execute(sa.select(repository.MESSAGES.c.purpose, repository.MESSAGES.c.ts))
        assert sorted(stored.all()) == sorted((p["purpose"], p["ts"]) for p in posted[:done])
        if db.engine.dialect.name == "postgresql":
            assert len(set(driver_module._RIDING) - riding_before) <= 1  # one statement for five sizes
    finally:
        await session.close()


async def test_the_outbox_finishes_any_number_of_notices_with_one_statement(db: Database) -> None:
    """Deliveries are recorded as done in one UPDATE of the notices' ids; on PostgreSQL the ids go as one array
    (``= ANY``), so that 1 and 70 notices are the same statement."""
    rids = []
    for i in range(25):  # two DMs and the channel's message each
        made = await services.create_request(
            uow=db.uow(), requester_id=f"UREQ{i}", resource=f"r{i}", justification="x", approvers=[ALICE, BOB]
        )
        rids.append(made.id)
    uow = db.uow()
    async with uow:
        pending = await uow.outbox.find(statuses=(outbox.PENDING,), limit=1000)
    assert len(pending) >= 70 and {n.request_id for n in pending} == set(rids)
    at, dialect = datetime.now(UTC), db.engine.dialect.name
    for batch in (pending[:1], pending[1:3], pending[3:70]):
        await delivery.notices_delivered(uow=db.uow(), deliveries=[delivery.Delivery(n) for n in batch])
    uow = db.uow()
    async with uow:
        left = await uow.outbox.find(statuses=(outbox.PENDING,), limit=1000)
        done = await uow.outbox.find(statuses=(outbox.DONE,), limit=1000)
    assert {n.id for n in done} == {n.id for n in pending[:70]}
    assert {n.id for n in left} == {n.id for n in pending[70:]}
    finishing = [p for key, p in driver_module._PREPARED.items() if key[0] == id(outbox._FINISH_MANY[dialect])]
    assert finishing
    for prepared in finishing:
        one, seventy = ({"ids": ids, "status": outbox.DONE, "at": at} for ids in ([1], list(range(70))))
        same = prepared.args(one)[0] == prepared.args(seventy)[0]
        assert same is (dialect == "postgresql")  # SQLite's IN list is a statement per (padded) length
