"""Races from two separate engines, as two bot replicas would race."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from bot.adapters.db import Database
from bot.adapters.tables import DecisionRow
from bot.domain import errors, events
from bot.domain.values import Approver, Status, Verdict
from bot.service_layer import services
from bot.service_layer.unit_of_work import AbstractUnitOfWork

ALICE, BOB = Approver("UALICE"), Approver("UBOB")
N = 50


async def _decide(db: Database, request_id: str, approver: str, verdict: Verdict, seen: list[events.Event]) -> str:
    uow: AbstractUnitOfWork = db.uow()
    try:
        result = await services.decide(uow=uow, request_id=request_id, approver_id=approver, verdict=verdict)
        return result.outcome.value
    except errors.DomainError as refused:
        return refused.code
    finally:
        seen.extend(uow.committed_events)


async def _create(db: Database, n: int) -> list[str]:
    return [
        (
            await services.create_request(
                uow=db.uow(),
                requester_id=f"UREQ{i % 7}",
                resource=f"db-{i}",
                justification="race",
                approvers=[ALICE, BOB],
            )
        ).id
        for i in range(n)
    ]


async def test_simultaneous_double_approvals_from_two_replicas(db: Database) -> None:
    replica_a, replica_b = Database(db.url), Database(db.url)
    try:
        ids = await _create(db, N)
        seen: list[events.Event] = []
        clicks = [
            (rid, who, replica) for rid in ids for who in ("UALICE", "UBOB") for replica in (replica_a, replica_b)
        ]
        random.Random(7).shuffle(clicks)
        # Every click runs to its end, failed or not: a failure left running would hold its connection mid-statement.
        outcomes = await asyncio.gather(
            *(_decide(rep, rid, who, Verdict.APPROVE, seen) for rid, who, rep in clicks), return_exceptions=True
        )
        assert Counter(outcomes) == {"RECORDED": 2 * N, "ALREADY_RECORDED": 2 * N}
        page = await services.list_requests(uow=db.uow(), per_page=100)
        assert {r.status for r in page.items} == {Status.APPROVED} and page.total == N
        async with db.engine.connect() as conn:
            per_request = (
                await conn.execute(select(DecisionRow.request_id, func.count()).group_by(DecisionRow.request_id))
            ).all()
        assert sorted(n for _, n in per_request) == [2] * N
        became_approved = Counter(
            e.request_id for e in seen if isinstance(e, events.StatusChanged) and e.new is Status.APPROVED
        )
        assert became_approved == Counter({rid: 1 for rid in ids})
        assert sum(isinstance(e, events.DecisionRecorded) for e in seen) == 2 * N
    finally:
        await replica_a.dispose()
        await replica_b.dispose()


async def test_approve_against_deny_ends_in_exactly_one_terminal_state(db: Database) -> None:
    replica_a, replica_b = Database(db.url), Database(db.url)
    try:
        ids = await _create(db, N)
        seen: list[events.Event] = []
        clicks = []
        for i, rid in enumerate(ids):
            clicks += [
                (rid, "UALICE", Verdict.APPROVE, replica_a),
                (rid, "UBOB", Verdict.APPROVE, replica_b),
                (rid, "UBOB" if i % 2 else "UALICE", Verdict.DENY, replica_b if i % 2 else replica_a),
            ]
        random.Random(11).shuffle(clicks)
        outcomes = await asyncio.gather(
            *(_decide(rep, rid, who, v, seen) for rid, who, v, rep in clicks), return_exceptions=True
        )
        assert not [o for o in outcomes if isinstance(o, BaseException)]
        terminal = Counter(e.request_id for e in seen if isinstance(e, events.StatusChanged))
        assert terminal == Counter({rid: 1 for rid in ids})
        for rid in ids:
            r = await services.get(uow=db.uow(), request_id=rid)
            assert r.status in (Status.APPROVED, Status.DENIED)
            verdicts = [d.verdict for d in r.decisions]
            assert len({d.approver_id for d in r.decisions}) == len(r.decisions) <= 2
            if r.status is Status.APPROVED:
                assert verdicts == [Verdict.APPROVE, Verdict.APPROVE]
            else:
                assert verdicts.count(Verdict.DENY) == 1
    finally:
        await replica_a.dispose()
        await replica_b.dispose()


# PostgreSQL only: SQLite's writers take the database's lock before they read, so nobody waits on a row.
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_decision_that_waited_for_the_lock_counts_the_one_it_waited_for(db: Database) -> None:
    """Another replica holds the request's row while it records Alice's approval; Bob's approval, made meanwhile,
    waits for it. Once Alice's is committed, Bob's must see it: the request is approved (it stayed pending
    with both approvals when the waiting read took the decisions from before the wait)."""
    assert db.engine.dialect.name == "postgresql"
    (rid,) = await _create(db, 1)
    other = Database(db.url)
    try:
        async with other.engine.connect() as conn:
            await conn.execute(sa.text("SELECT id FROM access_requests WHERE id = :id FOR UPDATE"), {"id": rid})
            await conn.execute(
                sa.text(
                    "INSERT INTO decisions (request_id, approver_id, verdict, decided_at) "
                    "VALUES (:id, 'UALICE', 'APPROVE', now())"
                ),
                {"id": rid},
            )
            await conn.execute(sa.text("UPDATE access_requests SET updated_at = now() WHERE id = :id"), {"id": rid})
            bob = asyncio.create_task(_decide(db, rid, "UBOB", Verdict.APPROVE, []))
            await asyncio.sleep(0.5)
            assert not bob.done()  # waiting for the row
            await conn.commit()
        assert await bob == "RECORDED"
        request = await services.get(uow=db.uow(), request_id=rid)
        assert request.status is Status.APPROVED
        assert [d.approver_id for d in request.decisions] == ["UALICE", "UBOB"]
    finally:
        await other.dispose()


# PostgreSQL only: SQLite's writers take the database's lock before they read, so nobody waits on a row.
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_recording_a_posted_message_does_not_hold_up_a_decision(db: Database) -> None:
    """The outbox records where a request's DM went in a transaction of its own; its foreign-key check holds a
    KEY SHARE lock on the request until it commits. A decision made meanwhile must not wait for it (it waited
    while decisions locked the row FOR UPDATE)."""
    assert db.engine.dialect.name == "postgresql"
    (rid,) = await _create(db, 1)
    other = Database(db.url)
    try:
        async with other.engine.connect() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO slack_messages (request_id, purpose, channel_id, ts, posted_at) "
                    "VALUES (:id, 'dm:UALICE', 'DUALICE', '1.000001', now())"
                ),
                {"id": rid},
            )
            outcome = await asyncio.wait_for(_decide(db, rid, "UALICE", Verdict.APPROVE, []), 5)
            assert outcome == "RECORDED"
            await conn.commit()
        request = await services.get(uow=db.uow(), request_id=rid)
        assert [d.approver_id for d in request.decisions] == ["UALICE"]
    finally:
        await other.dispose()


# PostgreSQL only: there a decision is read without a lock and written only if its request is unchanged.
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_decision_read_before_another_was_committed_writes_nothing(db: Database) -> None:
    """Alice's unit reads the request; Bob's approval (another replica) commits before Alice's unit writes. Her
    unit's commit must write nothing (no decision, audit entry or notice of hers) and say the request changed; run
    again, her approval counts Bob's and approves the request."""
    from bot.adapters.repository import ConcurrentUpdate
    from bot.adapters.tables import AuditRow, OutboxRow

    (rid,) = await _create(db, 1)
    other = Database(db.url)
    try:
        uow = db.uow()
        async with uow:
            request = await uow.requests.for_decision(rid)
            assert request is not None and request.decisions == []
            await services.approve(uow=other.uow(), request_id=rid, approver_id="UBOB")
            request.decide(approver_id="UALICE", verdict=Verdict.APPROVE, reason=None, now=services.utcnow())
            await uow.requests.save(request)
            await uow.audit.record(
                action="decision.approve", actor_id="UALICE", request_id=rid, at=services.utcnow(), details={}
            )
            with pytest.raises(ConcurrentUpdate):
                await uow.commit()
        async with db.engine.connect() as conn:
            decisions = (await conn.execute(select(DecisionRow.approver_id).where(DecisionRow.request_id == rid))).all()
            alices = await conn.execute(select(func.count()).where(AuditRow.actor_id == "UALICE"))
            notices = (await conn.execute(select(OutboxRow.dedupe_key).where(OutboxRow.request_id == rid))).all()
        assert [d for (d,) in decisions] == ["UBOB"]
        assert alices.scalar_one() == 0
        assert not [k for (k,) in notices if "UALICE" in k and "reply" in k]  # her decision's thread reply
        result = await services.approve(uow=db.uow(), request_id=rid, approver_id="UALICE")
        assert result.became is Status.APPROVED
    finally:
        await other.dispose()
