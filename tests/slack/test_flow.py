"""The main flows, end to end, in HTTP mode and in Socket Mode."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from bot.testing import text_of
from tests.slack.conftest import World, eventually

REQUEST = "prod-db <@UALICE|alice> <@UBOB|bob> for 4h Investigating incident 42"


def dm_text(world: World, user: str) -> str:
    messages = world.slack.dms(user)
    assert messages, f"{user} got no DM"
    return text_of(messages[-1].text, messages[-1].blocks)


async def test_one_line_request_is_approved_by_both(world: World) -> None:
    slack = world.slack
    reply = await slack.slash("UREQ", REQUEST)
    assert reply.status == 200 and reply.seconds < 3
    confirmation = slack.last_ephemeral("UREQ")
    assert "is sent to <@UALICE> and <@UBOB>" in confirmation
    request_id = confirmation.split("Request ")[1].split(" ")[0]

    await eventually(
        lambda: (
            len(slack.dms("UALICE")) == 1
            and len(slack.dms("UBOB")) == 1
            and len(slack.channel_messages("CNOTIFY")) == 1
        )
    )
    alice_dm = slack.dms("UALICE")[0]
    shown = text_of(alice_dm.text, alice_dm.blocks)
    for expected in (
        "Access request " + request_id,
        "<@UREQ>",
        "prod-db",
        "4 hours",
        "Investigating incident 42",
        "<@UBOB>",
        "[Approve]",
        "[Deny]",
    ):
        assert expected in shown
    assert alice_dm.metadata == {
        "event_type": "access_request",
        "event_payload": {
            "request_id": request_id,
            "status": "PENDING",
            "resource": "prod-db",
            "requester": "UREQ",
            "approvers": ["UALICE", "UBOB"],
            "notice": f"{request_id}:post:dm:UALICE",
        },
    }

    await slack.click("UALICE", alice_dm, "approve_request")
    await eventually(lambda: "<@UALICE> approved" in dm_text(world, "UBOB"))
    await world.settled()
    assert "Pending" in dm_text(world, "UALICE") and "[Approve]" not in dm_text(world, "UALICE")
    assert "[Approve]" in dm_text(world, "UBOB")
    assert slack.dms("UREQ") == []

    await slack.click("UBOB", slack.dms("UBOB")[0], "approve_request")
    await eventually(lambda: len(slack.dms("UREQ")) == 1)
    await world.settled()
    assert "was approved by <@UALICE> and <@UBOB>" in dm_text(world, "UREQ")
    for user in ("UALICE", "UBOB"):
        assert "*Approved*" in dm_text(world, user) and "[Approve]" not in dm_text(world, user)
        assert slack.dms(user)[0].metadata["event_payload"]["status"] == "APPROVED"  # type: ignore[index]
    channel = slack.channel_messages("CNOTIFY")[0]
    assert "*Approved*" in text_of(channel.text, channel.blocks)
    replies = slack.channel_messages("CNOTIFY", thread_ts=channel.ts)
    assert [text_of(r.text, r.blocks) for r in replies] == [
        f"<@UALICE> approved {request_id}.",
        f"<@UBOB> approved {request_id}.",
    ]
    assert slack.dms("UREQ")[0].metadata["event_payload"]["status"] == "APPROVED"  # type: ignore[index]


async def test_a_request_whose_text_says_payload_is_taken_like_any_other(world: World) -> None:
    """Bolt 1.30 reads any form body containing the word "payload" as an interactive payload: such a command
    became an empty request that no listener took, and the person saw Slack's error instead of an answer."""
    slack = world.slack
    reply = await slack.slash("UREQ", "payload-api <@UALICE> <@UBOB> deploy the payload & check <it>")
    assert reply.status == 200
    confirmation = slack.last_ephemeral("UREQ")
    assert "Request " in confirmation and "*payload-api*" in confirmation
    await eventually(lambda: len(slack.dms("UALICE")) == 1 and len(slack.dms("UBOB")) == 1)
    assert "deploy the payload &amp; check &lt;it&gt;" in dm_text(world, "UALICE")


async def test_the_approvers_are_recorded_with_the_names_and_emails_slack_gives(world: World) -> None:
    await world.slack.slash("UREQ", REQUEST)
    request_id = world.slack.last_ephemeral("UREQ").split("Request ")[1].split(" ")[0]
    query = sa.text(
        "SELECT user_id, display_name, email FROM request_approvers WHERE request_id = :rid ORDER BY position"
    )

    async def recorded() -> list[tuple[str, str, str | None]]:
        async with world.bot.db.engine.connect() as conn:
            return [tuple(row) for row in await conn.execute(query, {"rid": request_id})]

    expected = [("UALICE", "alice", "alice@example.com"), ("UBOB", "bob", "bob@example.com")]
    for _ in range(100):
        if await recorded() == expected:
            break
        await asyncio.sleep(0.02)
    assert await recorded() == expected
