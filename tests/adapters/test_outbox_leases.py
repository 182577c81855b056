"""A dispatcher extends the leases of the notices it holds, and only those: not another dispatcher's, not a notice
delivered or given back meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.adapters.db import Database
from bot.domain.values import Approver
from bot.service_layer import delivery, services

LEASE = timedelta(seconds=30)


async def test_only_the_leases_a_dispatcher_still_holds_are_renewed(db: Database) -> None:
    await services.create_request(
        uow=db.uow(),
        requester_id="UREQ",
        resource="prod-db",
        justification="incident 42",
        approvers=[Approver("UALICE", "Alice"), Approver("UBOB", "Bob")],
    )
    claimed = await delivery.claim_notices(uow=db.uow(), by="A", lease=LEASE, limit=10)
    assert len(claimed) == 3  # both DMs and the channel's message
    ids = [n.id for n in claimed]
    assert await delivery.renew_leases(uow=db.uow(), notice_ids=ids, by="B", lease=LEASE) == set()

    done, given_back, held = claimed
    await delivery.notices_delivered(uow=db.uow(), deliveries=[delivery.Delivery(done)], released=[given_back])
    assert await delivery.renew_leases(uow=db.uow(), notice_ids=ids, by="A", lease=LEASE * 4) == {held.id}

    # Once A's first leases have run out, another dispatcher may take the notice given back, not the one renewed.
    later = datetime.now(UTC) + LEASE + timedelta(seconds=1)
    uow = db.uow()
    async with uow:
        taken = await uow.outbox.claim(by="B", now=later, lease=LEASE, limit=10)
        await uow.commit()
    assert [n.id for n in taken] == [given_back.id]
