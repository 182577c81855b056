"""100 requests while every Slack method the bot calls fails at random (500, 503, 429, lost answers,
timeouts): every notice is delivered exactly once, every request ends in its right state."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.domain.values import Status
from bot.service_layer import delivery, services
from bot.testing import Fault
from tests.reliability.ledger import Ledger
from tests.slack.conftest import World, start_world, stop_world

REQUESTS, FAULT_RATE = 100, 0.25
CHAOS_METHODS = {
    "chat.postMessage",
    "chat.update",
    "conversations.open",
    "conversations.history",
    "conversations.replies",
    "users.info",
    "views.open",
    "views.publish",
}


def chaos(seed: int) -> tuple[object, Counter[str]]:
    rng, kinds = random.Random(seed), Counter[str]()
    choices = [
        ("500", Fault.http(500)),
        ("503", Fault.http(503)),
        ("429", Fault.rate_limited(1)),
        ("lost answer", Fault.lost_answer(502)),
        ("timeout", Fault.timeout(1.3)),
    ]

    def pick(method: str, params: dict[str, object]) -> Fault | None:
        if method not in CHAOS_METHODS or rng.random() > FAULT_RATE:
            return None
        name, fault = rng.choice(choices)
        kinds[name] += 1
        return fault

    return pick, kinds


@pytest.fixture
async def stormy(tmp_path: Path) -> AsyncIterator[World]:
    # Retries back off from 0.05 s up to 1 s: the waits below (30 s for a request's DMs) cover 20 and more attempts.
    # A DM after a failed attempt takes 3 calls (conversations.open and .history find what the last attempt may have
    # posted; then chat.postMessage), each failing a quarter of the time. With the default cap (300 s), a DM that
    # fails 10 times in a row (0.25 x 0.58^9, about 0.2% of DMs; this test sends 200) waits past 30 s.
    world = await start_world(
        tmp_path, "http", slack_timeout=1.0, outbox_base_delay=0.05, outbox_max_delay=1.0, outbox_max_attempts=50
    )
    try:
        yield world
    finally:
        await stop_world(world)


async def until(condition: object, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {condition}")


async def one_request(world: World, i: int) -> tuple[str, Status]:
    slack, requester = world.slack, f"UREQ{i}"
    for _ in range(20):  # a person tries again when Slack was too slow for the bot
        await slack.slash(requester, f"db-{i} <@UALICE> <@UBOB> storm {i}")
        shown = slack.last_ephemeral(requester)
        if "is sent to" in shown:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"request {i} was never accepted: {shown}")
    request_id = shown.split("Request ")[1].split(" ")[0]

    def dm(user: str):  # type: ignore[no-untyped-def]
        return slack.dm_about(user, request_id)

    await until(lambda: dm("UALICE") is not None and dm("UBOB") is not None)
    await slack.click("UALICE", dm("UALICE"), "approve_request")
    if i % 3:
        await slack.click("UBOB", dm("UBOB").snapshot(), "approve_request")
        return request_id, Status.APPROVED
    for _ in range(10):
        await slack.click("UBOB", dm("UBOB").snapshot(), "deny_request")
        try:
            await until(
                lambda: bool(
                    slack.open_views("UBOB")
                    and any(request_id in str(v["private_metadata"]) for v in slack.open_views("UBOB"))
                ),
                timeout=4,
            )
            break
        except AssertionError:
            continue  # the modal did not open (Slack failed); click again
    modal = next(v for v in slack.open_views("UBOB") if request_id in str(v["private_metadata"]))
    await slack.submit("UBOB", modal, {"reason": f"no {i}"})
    return request_id, Status.DENIED


async def test_every_notice_exactly_once_through_a_fault_storm(stormy: World) -> None:
    slack = stormy.slack
    for n in range(REQUESTS):
        from bot.testing.workspace import Person

        slack.add_person(Person(f"UREQ{n}", f"req{n}", f"Requester {n}"))
    pick, kinds = chaos(seed=20261126)
    slack.chaos = pick  # type: ignore[assignment]
    outcomes: list[tuple[str, Status]] = []
    for start in range(0, REQUESTS, 10):
        outcomes += await asyncio.gather(*(one_request(stormy, i) for i in range(start, start + 10)))
    await stormy.settled(timeout=120)
    slack.chaos = None

    views = [await services.get(uow=stormy.bot.db.uow(), request_id=rid) for rid, _ in outcomes]
    assert [v.status for v in views] == [status for _, status in outcomes]
    ledger = Ledger.of(slack, views)
    ledger.assert_exactly_once()
    dead = await delivery.outbox_entries(uow=stormy.bot.db.uow())
    assert dead == []
    faults = sum(kinds.values())
    print(
        f"\nfault storm: {REQUESTS} requests, {len(slack.calls)} Slack calls, {faults} faults injected "
        f"({dict(kinds)}), duplicates {len(ledger.duplicates)}, lost {len(ledger.missing)}"
    )
    assert faults >= 100 and kinds["lost answer"] and kinds["timeout"]
