"""A unit of work leases the notices it queues to the process's dispatcher in the same transaction and hands
them over after the commit, except where an earlier notice of the same message is pending and not that
dispatcher's: then the new one waits in the database and is claimed in its turn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bot.adapters.db import Database
from bot.adapters.outbox import OUTBOX, Claimed
from bot.domain.values import Approver, Status
from bot.service_layer import delivery, services
from bot.service_layer.results import RequestView

ALICE, BOB = Approver("UALICE", "Alice"), Approver("UBOB", "Bob")


class Recorder:
    """Stands in for the dispatcher: records what it is handed."""

    name = "this-process"
    lease = timedelta(seconds=30)

    def __init__(self) -> None:
        self.handed_over: list[tuple[list[Claimed], dict[str, RequestView], bool]] = []

    def handed(self, leased: list[Claimed], views: dict[str, RequestView], *, others: bool) -> None:
        self.handed_over.append((leased, views, others))


async def _rows(db: Database, request_id: str) -> dict[str, tuple[str | None, int, str]]:
    async with db.engine.connect() as conn:
        found = await conn.execute(
            sa.select(OUTBOX.c.action, OUTBOX.c.subject, OUTBOX.c.claimed_by, OUTBOX.c.claims, OUTBOX.c.status).where(
                OUTBOX.c.request_id == request_id
            )
        )
        return {f"{r.action}:{r.subject or ''}": (r.claimed_by, r.claims, r.status) for r in found}


async def _create(db: Database) -> str:
    view = await services.create_request(
        uow=db.uow(), requester_id="UREQ", resource="prod-db", justification="why", approvers=[ALICE, BOB]
    )
    return view.id


async def test_queued_notices_are_leased_and_handed_over_with_the_state(db: Database) -> None:
    db.handover = recorder = Recorder()
    rid = await _create(db)
    [(leased, views, others)] = recorder.handed_over
    posts = {("post_dm", "UALICE"), ("post_dm", "UBOB"), ("post_channel", None)}
    assert {(n.action, n.subject) for n in leased} == posts
    assert all(n.claims == 1 and not n.maybe_delivered_before for n in leased)
    assert views[rid].status is Status.PENDING and not others
    assert set((await _rows(db, rid)).values()) == {("this-process", 1, "pending")}
    # Leased: another dispatcher claims none of them.
    assert await delivery.claim_notices(uow=db.uow(), by="another-process", lease=timedelta(seconds=30)) == []

    await services.approve(uow=db.uow(), request_id=rid, approver_id="UALICE")
    leased, views, others = recorder.handed_over[-1]
    assert {n.action for n in leased} == {"update_dm", "update_channel", "post_reply"}
    assert views[rid].approvals == 1 and not others  # queued behind this process's own, held in its memory


async def test_a_message_with_a_notice_pending_elsewhere_keeps_its_order(db: Database) -> None:
    db.handover = recorder = Recorder()
    rid = await _create(db)
    # Another process holds the channel message's post (say it claimed it after a lease ran out).
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.request_id == rid, OUTBOX.c.action == "post_channel")
            .values(claimed_by="another-process")
        )
    await services.approve(uow=db.uow(), request_id=rid, approver_id="UALICE")
    leased, _views, others = recorder.handed_over[-1]
    assert {n.action for n in leased} == {"update_dm"} and others  # the DMs' updates only
    rows = await _rows(db, rid)
    assert rows["update_channel:"] == (None, 0, "pending") and rows["post_reply:UALICE"] == (None, 0, "pending")

    # Once the other process has delivered its post, the channel's next notice is claimed, in order.
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.update(OUTBOX)
            .where(OUTBOX.c.request_id == rid, OUTBOX.c.action == "post_channel")
            .values(status="done", lease_until=None, finished_at=datetime.now(UTC))
        )
    [claimed] = [
        n
        for n in await delivery.claim_notices(uow=db.uow(), by="this-process", lease=timedelta(seconds=30))
        if n.target == "channel"
    ]
    assert claimed.action == "update_channel"


async def test_without_a_dispatcher_nothing_is_leased(db: Database) -> None:
    rid = await _create(db)  # e.g. the command line, or another tool writing to the database
    assert set((await _rows(db, rid)).values()) == {(None, 0, "pending")}
