"""Where each posted message is: recorded as the outbox's deliveries are, read back to update the messages."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.adapters.db import Database
from bot.adapters.repository import PostedMessage
from bot.domain.values import Approver
from bot.service_layer import services


async def test_a_purpose_recorded_again_keeps_its_first_message(db: Database) -> None:
    """A delivery retried after a crash may record a message again: the first place recorded stays, so updates go
    to the message people already see; the other messages of the same recording are kept."""
    view = await services.create_request(
        uow=db.uow(), requester_id="UREQ", resource="db", justification="j", approvers=[Approver("UA"), Approver("UB")]
    )
    async with db.uow() as uow:
        await uow.messages.record_many(
            [PostedMessage(view.id, "channel", "CNOTIFY", "100.000001")], at=datetime.now(UTC)
        )
        await uow.commit()
    async with db.uow() as uow:
        await uow.messages.record_many(
            [
                PostedMessage(view.id, "channel", "CNOTIFY", "200.000002"),
                PostedMessage(view.id, "dm:UA", "DUA", "300.3"),
            ],
            at=datetime.now(UTC),
        )
        await uow.commit()
    async with db.uow().reading() as uow:
        places = await uow.messages.for_requests([view.id])
    assert places == {view.id: {"channel": ("CNOTIFY", "100.000001"), "dm:UA": ("DUA", "300.3")}}
