"""Nothing a user types pings anyone or forges a link: every piece of user text is escaped wherever it shows."""

from __future__ import annotations

import json

from bot.testing import text_of
from tests.slack.conftest import World, eventually

HOSTILE = "<!channel> <!here> <!everyone> <@UDAN> <https://evil.example/login|Approve here> & co"
RAW = ("<!channel>", "<!here>", "<!everyone>", "<@UDAN>", "<https://evil.example")


def everything_shown(world: World) -> list[str]:
    slack = world.slack
    shown = [text_of(m.text, m.blocks) + "\n" + m.text for m in slack.messages.values()]
    shown += [text_of(e.text, e.blocks) + "\n" + e.text for e in slack.ephemerals]
    shown += [json.dumps(v) for v in slack.views.values()] + [json.dumps(h) for h in slack.homes.values()]
    return shown


async def test_typed_mentions_and_links_show_as_text(world: World) -> None:
    slack = world.slack
    typed = HOSTILE.replace("<@UDAN> ", "")  # a one-line request takes no extra mentions: the form does
    await slack.slash("UREQ", f"db <@UALICE> <@UBOB> {typed}")
    assert "is sent to" in slack.last_ephemeral("UREQ")
    await slack.slash("UREQ", "")
    form = slack.open_views("UREQ")[0]
    await slack.submit(
        "UREQ", form, {"resource": HOSTILE, "approver_1": "UALICE", "approver_2": "UBOB", "justification": HOSTILE}
    )
    await eventually(lambda: len(slack.dms("UBOB")) == 2)
    await world.settled()
    await slack.click("UBOB", slack.dms("UBOB")[0], "deny_request")
    await eventually(lambda: bool(slack.open_views("UBOB")))
    await slack.submit("UBOB", slack.open_views("UBOB")[0], {"reason": HOSTILE})
    await eventually(lambda: len(slack.dms("UREQ")) == 2)  # the form's confirmation, the outcome
    await world.settled()
    await slack.open_home("UREQ")
    await eventually(lambda: slack.home("UREQ") is not None)
    await slack.slash("UREQ", "list")
    request_id = slack.dms("UREQ")[-1].metadata["event_payload"]["request_id"]  # type: ignore[index]
    await slack.slash("UREQ", f"status {request_id}")
    shown = everything_shown(world)
    for raw in RAW:
        assert not [s for s in shown if raw in s], f"{raw} reached Slack unescaped"
    escaped = "&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; &lt;@UDAN&gt;"
    assert any(escaped in s for s in shown)
    assert any("&amp; co" in s for s in shown)


async def test_hostile_text_in_commands_is_answered_not_crashed(world: World) -> None:
    slack = world.slack
    for text in [
        "status <!channel>",
        "cancel <@UDAN>",
        "list <https://evil.example|x>",
        "x" * 100_000,
        "\x00\x01\x1b[31m <@UALICE> <@UBOB> \u202e\ufeff",
        "db < <@UALICE> <@UBOB> >>> <<",
        "db <@UALICE> <@UBOB> " + "\U0001f600" * 3000,
        "<",
        ">",
        "&&&",
        "<@>",
        "<@U|>",
    ]:
        reply = await slack.slash("UREQ", text)
        assert reply.status == 200, text[:40]
        shown = slack.last_ephemeral("UREQ")
        assert "Something went wrong" not in shown, (text[:40], shown)
        for raw in RAW:
            assert raw not in shown
