"""Every bad one-line request gets a specific, private answer, and nothing is stored."""

from __future__ import annotations

import asyncio

import pytest

from bot.service_layer import delivery, services
from bot.testing import Fault, text_of
from tests.databases import audit_entries, rows_about_requests
from tests.slack.conftest import World, eventually

CASES = [
    ("prod-db <@UNOBODY> <@UBOB> why", "I can't find <@UNOBODY> in this workspace"),
    ("prod-db <@UOTHERBOT> <@UBOB> why", "<@UOTHERBOT> is an app, not a person"),
    ("prod-db <@UGONE> <@UBOB> why", "<@UGONE>'s account is deactivated"),
    ("prod-db <@UBOB> <@UBOB> why", "the same person is named twice"),
    ("prod-db <@UREQ> <@UBOB> why", "You cannot approve your own request"),
    ("prod-db <@UALICE> why", "Name exactly 2 approvers; you named 1"),
    ("prod-db <@UALICE> <@UBOB> <@UCAROL> why", "Name exactly 2 approvers; you named 3"),
    ("prod-db <@UALICE> <@UBOB>", "Add a justification after the approvers"),
    ("<@UALICE> <@UBOB> why", "Start with the resource you need access to"),
    ("prod-db @alice @bob why", "I couldn't recognise `@alice` as a Slack user"),
    ("prod-db <#CGENERAL|general> <@UBOB> why", "Approvers must be people, not channels"),
    ("prod-db <!subteam^S0OPS|@ops> why", "Approvers must be people, not user groups"),
    ("prod-db <!channel> <@UBOB> why", "Approvers must be people: `@channel` notifies a whole channel"),
    ("prod-db <mailto:bob@example.com|bob@example.com> <@UALICE> why", "not email addresses"),
    ("prod-db <@UALICE> and then <@UBOB> why", "Put the approvers next to each other"),
    ("prod-db <@UALICE> <@UBOB> for 0h why", "between 1 minute and 90 days"),
    ("x" * 201 + " <@UALICE> <@UBOB> why", "The resource is 201 characters long; the limit is 200"),
    ("db <@UALICE> <@UBOB> " + "j" * 2001, "The justification is 2,001 characters long; the limit is 2,000"),
    ("list everything", "`list` takes one of"),
    ("status", "`status` takes one request id"),
    ("cancel 42", "`42` is not a request id"),
]


@pytest.mark.parametrize(("text", "says"), CASES, ids=[c[1][:30] for c in CASES])
async def test_bad_request_is_answered_privately_and_stores_nothing(world: World, text: str, says: str) -> None:
    reply = await world.slack.slash("UREQ", text)
    assert reply.status == 200 and reply.seconds < 3
    shown = world.slack.last_ephemeral("UREQ")
    assert says in shown and shown.startswith(":warning:")
    assert (await services.list_requests(uow=world.bot.db.uow())).total == 0
    assert world.slack.dms("UALICE") == world.slack.dms("UBOB") == []


async def test_slow_slack_still_gets_an_ack_in_time(world: World) -> None:
    world.slack.inject("users.info", Fault.latency(2.5))
    reply = await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident")
    assert reply.status == 200 and reply.seconds < 3
    assert "Working on it" in world.slack.last_ephemeral("UREQ")
    await eventually(lambda: "is sent to <@UALICE> and <@UBOB>" in world.slack.last_ephemeral("UREQ"))
    await eventually(lambda: len(world.slack.dms("UALICE")) == 1)


async def test_a_refusal_after_a_slow_lookup_still_reaches_the_requester(world: World) -> None:
    world.slack.inject("users.info", Fault.latency(2.5))
    reply = await world.slack.slash("UREQ", "prod-db <@UALICE> <@UGONE> incident")
    assert reply.status == 200 and reply.seconds < 3
    assert "Working on it" in world.slack.last_ephemeral("UREQ")
    await eventually(lambda: "deactivated" in world.slack.last_ephemeral("UREQ"))
    assert (await services.list_requests(uow=world.bot.db.uow())).total == 0


async def test_slack_failing_users_info_stores_nothing_and_says_so(world: World) -> None:
    world.slack.inject("users.info", Fault.slack_error("fatal_error"), Fault.slack_error("fatal_error"))
    await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident")
    assert "nothing was stored" in world.slack.last_ephemeral("UREQ")
    assert (await services.list_requests(uow=world.bot.db.uow())).total == 0


async def test_one_approver_unknown_to_a_failing_slack_stores_nothing_however_the_other_lookup_ends(
    world: World,
) -> None:
    """The approvers are looked up together; one lookup failing while the other is still on its way (slow) ends the
    command at once or after it, but always with nothing stored and the reason given."""
    world.slack.inject("users.info", Fault.latency(0.5), Fault.slack_error("fatal_error"))
    reply = await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident")
    assert reply.status == 200
    assert "nothing was stored" in world.slack.last_ephemeral("UREQ")
    await asyncio.sleep(0.6)  # the slow lookup's answer comes, and is not used
    assert (await services.list_requests(uow=world.bot.db.uow())).total == 0
    assert world.slack.dms("UALICE") == world.slack.dms("UBOB") == []


async def test_unreachable_approver_and_channel_are_explained_to_the_requester(world: World) -> None:
    world.slack.inject("chat.postMessage", Fault.slack_error("user_not_found"))
    world.slack.channels["CNOTIFY"].bot_is_member = False
    await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident")
    assert "is sent to" in world.slack.last_ephemeral("UREQ")
    await eventually(lambda: len(world.slack.dms("UREQ")) == 2)
    told = "\n".join(text_of(m.text, m.blocks) for m in world.slack.dms("UREQ"))
    assert "(that person is not in this workspace)" in told and "waits for them in the bot's App Home" in told
    assert "to the notification channel (the bot is not in that channel: invite it with /invite)" in told
    page = await services.list_requests(uow=world.bot.db.uow())
    assert page.total == 1 and page.items[0].status.value == "PENDING"
    failed = await delivery.outbox_entries(uow=world.bot.db.uow())
    assert sorted(e.last_error or "" for e in failed) == ["not_in_channel", "user_not_found"]


async def test_a_request_refused_for_what_slack_says_of_an_approver_is_removed_before_anyone_is_told(
    world: World,
) -> None:
    """The request is stored while Slack is asked about its approvers; when one of them cannot approve, it is
    removed before anybody is told of it: no message is ever posted, and only its audit entries stay, saying why."""
    await world.slack.slash("UREQ", "prod-db <@UALICE> <@UOTHERBOT> why")
    says = "<@UOTHERBOT> is an app, not a person: approvers must be people."
    assert says in world.slack.last_ephemeral("UREQ")
    await asyncio.sleep(0.5)
    assert world.slack.calls_to("chat.postMessage") == []
    assert set((await rows_about_requests(world.bot.db.engine)).values()) == {0}
    audit = await audit_entries(world.bot.db.engine)
    assert [action for action, _ in audit] == ["request.created", "request.removed"]
    assert audit[1][1] == {"why": says}
