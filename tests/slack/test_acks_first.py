"""Slack wants an ack within 3 s; a notice can wait. While a request waits for its ack, the outbox dispatcher
starts at most ``batch_while_acking`` deliveries at a time (3; 6 under a backlog), and up to ``batch`` (20) otherwise.
Of the notices waiting, approvers' DMs go first."""

from __future__ import annotations

import asyncio

from bot.testing import Fault
from bot.testing.workspace import Message
from tests.slack.conftest import World, eventually


async def _post_times(world: World) -> list[float]:
    """When each of a new request's three messages (two DMs, the channel's) reached Slack, each post taking
    Slack 0.3 s."""
    loop, times = asyncio.get_running_loop(), []

    def seen(_: Message) -> None:
        times.append(loop.time())

    world.slack.on_post.append(seen)
    world.slack.inject("chat.postMessage", *[Fault.latency(0.3)] * 3)
    await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
    await eventually(lambda: len(times) == 3)
    return times


async def test_fewer_deliveries_at_a_time_while_an_ack_is_pending(world: World) -> None:
    """One place (fewer than the three messages, to see them wait), and one more for an approver's DM: the two DMs
    go together, the channel's message after them."""
    world.bot.dispatcher.batch_while_acking = 1
    world.bot.dispatcher.awaiting_ack += 1  # as if another person's request were still waiting for its ack
    try:
        times = await _post_times(world)
    finally:
        world.bot.dispatcher.awaiting_ack -= 1
    assert times[1] - times[0] < 0.15  # the DMs: 0.3 s each, together
    assert times[2] - times[1] >= 0.25  # the channel's: after them


async def test_deliveries_go_together_when_no_ack_is_pending(world: World) -> None:
    times = await _post_times(world)
    assert times[-1] - times[0] < 0.25


async def test_the_count_of_pending_acks_returns_to_zero(world: World) -> None:
    for n in range(3):
        await world.slack.slash("UREQ", f"db-{n} <@UALICE> <@UBOB> incident 42")
        await world.slack.slash("UREQ", "help")
    assert world.bot.dispatcher.awaiting_ack == 0


async def test_a_new_requests_dms_go_before_an_outcome_queued_earlier(world: World) -> None:
    """Under a backlog an approver's DM goes first: the request cannot move until its approvers see it. Then the
    requester's outcome, then updates."""
    slack, dispatcher = world.slack, world.bot.dispatcher
    first = await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
    rid = first.text.split("Request ")[1].split(" ")[0]
    await world.settled()
    dispatcher.batch = dispatcher.batch_while_acking = 1  # one delivery at a time: the others queue
    slack.inject("chat.update", *[Fault.latency(0.3)] * 6)  # the approvals' updates hold the one place
    for approver in ("UALICE", "UBOB"):
        message = slack.dm_about(approver, rid)
        assert message is not None
        await slack.click(approver, message, "approve_request")
    # The outcome is queued behind the updates; now someone else asks for access.
    second = await slack.slash("UREQ2", "staging-db <@UALICE> <@UBOB> deploy 7")
    rid2 = second.text.split("Request ")[1].split(" ")[0]
    await world.settled(timeout=20)

    posts = [p for m, p in slack.calls if m == "chat.postMessage" and not p.get("thread_ts")]
    about = [(p["channel"], p["metadata"]["event_payload"]["request_id"]) for p in posts]
    outcome = about.index(("UREQ", rid))
    assert about.index(("UALICE", rid2)) < outcome
    assert about.index(("UBOB", rid2)) < outcome


async def test_a_new_requests_dms_do_not_wait_for_the_dispatchers_loop(world: World) -> None:
    """The unit that stores a request starts its DMs' deliveries itself: they do not wait for the dispatcher's
    loop, busy here with a claim from the database that does not end."""
    dispatcher, release = world.bot.dispatcher, asyncio.Event()
    claiming = asyncio.Event()

    async def endless_claim(room: int) -> int:
        claiming.set()
        await release.wait()
        return 0

    dispatcher._claim = endless_claim  # type: ignore[method-assign]
    dispatcher._claim_soon()
    try:
        await asyncio.wait_for(claiming.wait(), 5)
        reply = await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
        rid = reply.text.split("Request ")[1].split(" ")[0]
        await eventually(lambda: all(world.slack.dm_about(a, rid) is not None for a in ("UALICE", "UBOB")))
    finally:
        release.set()


async def test_a_new_requests_dms_go_before_its_channel_message(world: World) -> None:
    """With nothing else waiting, a new request's DMs start before its message in the channel, request after
    request: the channel's messages take turns with the approvers' DMs only once they have waited (under a burst)."""
    slack = world.slack
    for n in range(10):
        await slack.slash("UREQ", f"db-{n} <@UALICE> <@UBOB> deploy {n}")
        await world.settled()
    posts = [p for m, p in slack.calls if m == "chat.postMessage" and not p.get("thread_ts")]
    order: dict[str, list[str]] = {}
    for p in posts:
        order.setdefault(p["metadata"]["event_payload"]["request_id"], []).append(p["channel"])
    assert len(order) == 10
    assert all(channels == ["UALICE", "UBOB", "CNOTIFY"] for channels in order.values()), order


async def test_the_dm_someone_just_clicked_in_is_updated_before_updates_queued_earlier(world: World) -> None:
    """Slack shows nothing for a click until the message changes: the update of the DM its approver just clicked
    in goes with the waited-for notices, before the other messages' updates, even those queued earlier."""
    slack, dispatcher = world.slack, world.bot.dispatcher
    rids = []
    for n in range(2):
        reply = await slack.slash("UREQ", f"db-{n} <@UALICE> <@UBOB> deploy {n}")
        rids.append(reply.text.split("Request ")[1].split(" ")[0])
    await world.settled()
    dispatcher.batch = dispatcher.batch_while_acking = 1  # one delivery at a time: the others queue
    slack.inject("chat.update", *[Fault.latency(0.3)] * 8)
    bobs, alices = slack.dm_about("UBOB", rids[0]), slack.dm_about("UALICE", rids[1])
    assert bobs is not None and alices is not None
    await slack.click("UBOB", bobs, "approve_request")  # four messages of the first request to update or post
    await slack.click("UALICE", alices, "approve_request")
    await world.settled(timeout=20)

    calls = [(m, p) for m, p in slack.calls if m in ("chat.update", "chat.postMessage")]
    order = [(m, p["channel"], p["metadata"]["event_payload"]["request_id"]) for m, p in calls if p.get("metadata")]
    clicked = order.index(("chat.update", alices.channel, rids[1]))
    earlier = [
        ("chat.update", slack.dm_channel("UALICE").id, rids[0]),  # Alice's DM about the first request
        ("chat.update", "CNOTIFY", rids[0]),  # the first request's channel message
    ]
    assert all(clicked < order.index(other) for other in earlier), order
    assert order.index(("chat.update", bobs.channel, rids[0])) < clicked  # Bob's click came first


async def test_while_an_ack_is_pending_updates_nobody_waits_for_go_one_at_a_time(world: World) -> None:
    """The updates of Bob's DM and of the channel's message (nobody just clicked in them) wait for each other while
    a request waits for its ack; Alice's DM, in which she clicked, does not wait for them."""
    slack, dispatcher, loop = world.slack, world.bot.dispatcher, asyncio.get_running_loop()
    reply = await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
    rid = reply.text.split("Request ")[1].split(" ")[0]
    await world.settled()
    alices = slack.dm_about("UALICE", rid)
    assert alices is not None
    updated: dict[str, float] = {}
    slack.on_update.append(lambda m: updated.setdefault(m.channel, loop.time()))
    slack.inject("chat.update", *[Fault.latency(0.3)] * 3)
    dispatcher.max_lag = 5.0  # none of them waits long enough to go ahead of the others (the next test)
    dispatcher.awaiting_ack += 1  # as if another person's request were still waiting for its ack
    try:
        await slack.click("UALICE", alices, "approve_request")
        await eventually(lambda: len(updated) == 3, timeout=10)
    finally:
        dispatcher.awaiting_ack -= 1
    bobs_dm, channel = slack.dm_channel("UBOB").id, "CNOTIFY"
    assert abs(updated[bobs_dm] - updated[channel]) >= 0.25  # one after the other: 0.3 s each
    assert updated[alices.channel] <= min(updated[bobs_dm], updated[channel])


async def test_a_message_nobody_waits_for_still_goes_while_acks_are_always_awaited(world: World) -> None:
    """Requests that keep coming keep acks awaited and approvers' DMs in flight. The notify channel's message (which
    nobody waits for) goes once it has waited ``max_lag``, not when nothing else is in flight: under a sustained
    burst that moment did not come, and the channel fell further and further behind."""
    slack, dispatcher, loop = world.slack, world.bot.dispatcher, asyncio.get_running_loop()
    dispatcher.max_lag = 0.2
    posted: dict[tuple[str, str], float] = {}

    def seen(message: Message) -> None:
        assert message.metadata is not None
        posted.setdefault((message.channel, message.metadata["event_payload"]["request_id"]), loop.time())

    slack.on_post.append(seen)
    dispatcher.awaiting_ack += 1  # as if other people's requests were always waiting for their acks
    try:
        slack.inject("chat.postMessage", *[Fault.latency(0.4)] * 2)  # the first request's DMs take 0.4 s
        started = loop.time()
        first = (await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")).text.split("Request ")[1]
        await asyncio.sleep(0.3)
        slack.inject("chat.postMessage", *[Fault.latency(0.4)] * 2)  # and so do the next one's, begun before them
        second = (await slack.slash("UREQ2", "ci-db <@UALICE> <@UBOB> deploy 7")).text.split("Request ")[1]
        first, second = first.split(" ")[0], second.split(" ")[0]
        await eventually(lambda: len(posted) == 6, timeout=10)
    finally:
        dispatcher.awaiting_ack -= 1
    channel = posted[("CNOTIFY", first)]
    # After its 0.2 s (~0.21 s after the command), while the first request's DMs were still on their way (0.4 s
    # each) and before the second's: compared with those posts rather than the clock, which a busy test process
    # can stall (one run of the whole suite had the channel at 0.39 s).
    dms = {r: min(posted[(slack.dm_channel(u).id, r)] for u in ("UALICE", "UBOB")) for r in (first, second)}
    assert started + 0.2 <= channel < dms[first] < dms[second]


async def test_more_places_while_acking_once_waited_for_messages_back_up(world: World) -> None:
    """Three places while acks are awaited; three more once more than six waited-for messages (approvers' DMs,
    outcomes, clicked DMs) are ready: under a burst they would otherwise back up behind the acks."""
    dispatcher = world.bot.dispatcher
    assert dispatcher._limit() == dispatcher.batch == 20
    dispatcher.awaiting_ack += 1
    try:
        waiting = dispatcher._ready_first[0]
        waiting.extend(("AR-X", f"dm:U{n}") for n in range(6))
        assert dispatcher._limit() == 3
        waiting.append(("AR-X", "dm:U6"))
        assert dispatcher._limit() == 6
    finally:
        dispatcher._ready_first[0].clear()
        dispatcher.awaiting_ack -= 1
