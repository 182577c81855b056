"""Under a burst the dispatcher falls behind on updates. A request whose messages are still owed keeps its state
and its messages' places in the dispatcher, however many newer requests come meanwhile: each delivery renders
from them instead of reading the request back from the database (four statements, more than the delivery)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.service_layer import delivery
from bot.testing import Fault
from tests.slack.conftest import World


def _request_id(text: str) -> str:
    return text.split("Request ")[1].split(" ")[0]


async def test_a_request_far_behind_in_the_backlog_is_delivered_from_what_the_dispatcher_knows(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack, dispatcher = world.slack, world.bot.dispatcher
    dispatcher.remember = 1  # of the requests owed nothing, only the latest is kept
    dispatcher.batch = dispatcher.batch_while_acking = 1  # one delivery at a time: the rest wait
    reads: list[str] = []
    read_back = delivery.notice_context

    async def counted(**kwargs: Any) -> delivery.NoticeContext:
        reads.append(kwargs["request_id"])
        return await read_back(**kwargs)

    monkeypatch.setattr(delivery, "notice_context", counted)
    first = _request_id((await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")).text)
    await world.settled()
    slack.inject("chat.update", *[Fault.latency(0.2)] * 3)  # the first request's updates fall behind
    for approver in ("UALICE", "UBOB"):
        message = slack.dm_about(approver, first)
        assert message is not None
        await slack.click(approver, message, "approve_request")
    # Meanwhile three more requests: each is newer than the first, whose notices still wait.
    later = [_request_id((await slack.slash("UREQ2", f"db-{n} <@UALICE> <@UBOB> deploy {n}")).text) for n in range(3)]
    await world.settled(timeout=20)

    assert reads == []
    [posted] = [m for m in slack.channel_messages("CNOTIFY") if m.metadata["event_payload"]["request_id"] == first]
    assert posted.metadata["event_payload"]["status"] == "APPROVED"
    assert "*Approved*" in str(posted.blocks)
    for approver in ("UALICE", "UBOB"):
        dm = slack.dm_about(approver, first)
        assert dm is not None and dm.metadata["event_payload"]["status"] == "APPROVED"
        assert all(slack.dm_about(approver, rid) is not None for rid in later)
    outcome = [m for m in slack.dms("UREQ") if "was approved by" in m.text]
    assert len(outcome) == 1 and first in outcome[0].text
