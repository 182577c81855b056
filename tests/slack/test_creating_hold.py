"""While a new request is stored and checked, the outbox dispatcher starts only approvers' DMs (``creating``): the
request's own statement and check come back to a less busy event loop. The hold is short and never starves anyone:
it ends ``creating_hold`` after the newest such request began, and a message nobody waits for still goes once it has
waited ``max_lag``."""

from __future__ import annotations

import asyncio

from bot.testing.workspace import Message
from tests.slack.conftest import World, eventually, settled_dm


async def _approved_by_alice(world: World) -> tuple[str, dict[str, float]]:
    """A request, settled; then Alice approves it while another person's request is being created. Returns its id
    and, by channel, when each of its messages was next updated."""
    slack, loop = world.slack, asyncio.get_running_loop()
    rid, alices = await settled_dm(world)
    updated: dict[str, float] = {}

    def seen(message: Message) -> None:
        updated.setdefault(message.channel, loop.time())

    slack.on_update.append(seen)
    await slack.click("UALICE", alices, "approve_request")
    return rid, updated


async def test_only_approvers_dms_start_while_a_new_request_is_created(world: World) -> None:
    dispatcher, slack, loop = world.bot.dispatcher, world.slack, asyncio.get_running_loop()
    dispatcher.creating_hold = 5.0
    with dispatcher.creating():  # as if another person's request were being stored and checked
        _, updated = await _approved_by_alice(world)
        await asyncio.sleep(0.3)
        assert updated == {}  # Alice's DM, Bob's and the channel's message wait
        # A new request's DMs go meanwhile (its own creation is under way too).
        reply = await slack.slash("UREQ2", "staging-db <@UALICE> <@UBOB> deploy 7")
        rid2 = reply.text.split("Request ")[1].split(" ")[0]
        await eventually(lambda: all(slack.dm_about(a, rid2) is not None for a in ("UALICE", "UBOB")))
        assert updated == {}
        released = loop.time()
    await eventually(lambda: len(updated) == 3)  # then the updates go
    assert min(updated.values()) >= released


async def test_the_hold_ends_after_creating_hold_whatever_the_request_waits_for(world: World) -> None:
    """A new request whose check waits for Slack (a slow users.info) holds the other deliveries back for
    ``creating_hold`` at most."""
    dispatcher, loop = world.bot.dispatcher, asyncio.get_running_loop()
    dispatcher.creating_hold = 0.4
    with dispatcher.creating():
        began = loop.time()
        _, updated = await _approved_by_alice(world)
        await eventually(lambda: len(updated) == 3, timeout=5)
        assert min(updated.values()) >= began + 0.4


async def test_a_message_nobody_waits_for_still_goes_after_max_lag(world: World) -> None:
    """Requests being created one after another keep renewing the hold: the notify channel's message of a request
    (which nobody waits for) goes once it has waited ``max_lag``, hold or not."""
    dispatcher, slack, loop = world.bot.dispatcher, world.slack, asyncio.get_running_loop()
    dispatcher.creating_hold, dispatcher.max_lag = 30.0, 0.3
    posted: dict[str, float] = {}
    slack.on_post.append(lambda m: posted.setdefault(m.channel, loop.time()))
    with dispatcher.creating():
        started = loop.time()
        await slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 42")
        await eventually(lambda: "CNOTIFY" in posted, timeout=5)
    dms = [posted[slack.dm_channel(u).id] for u in ("UALICE", "UBOB")]
    assert max(dms) < started + 0.3 <= posted["CNOTIFY"]  # the DMs at once, the channel's after its max_lag
