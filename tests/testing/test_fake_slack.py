"""The fake Slack answers as Slack does: auth, errors, limits, faults, response_url, Socket Mode."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.testing import APP_TOKEN, BOT_TOKEN, FakeSlack, Fault

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake
        await fake.close_http()


def client(slack: FakeSlack, token: str = BOT_TOKEN) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=slack.api_url, retry_handlers=[])


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as failed:
        await call
    return str(failed.value.response["error"])


async def raw(slack: FakeSlack, method: str, **kwargs: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(kwargs.pop("verb", "POST"), f"{slack.api_url}{method}", **kwargs) as r,
    ):
        return r.status, await r.json(), dict(r.headers)


async def test_tokens_are_checked(slack: FakeSlack) -> None:
    assert await error_of(client(slack, "xoxb-wrong").auth_test()) == "invalid_auth"
    _, body, _ = await raw(slack, "auth.test")
    assert body == {"ok": False, "error": "not_authed"}
    assert await error_of(client(slack).apps_connections_open(app_token=BOT_TOKEN)) == "not_allowed_token_type"
    assert (await client(slack).auth_test())["user_id"] == "UBOT"


async def test_unknown_method_is_refused_and_remembered(slack: FakeSlack) -> None:
    assert await error_of(client(slack).api_call("conversations.kick")) == "unknown_method"
    assert slack.unexpected == ["conversations.kick"]


async def test_get_query_form_and_json_bodies(slack: FakeSlack) -> None:
    auth = {"Authorization": f"Bearer {BOT_TOKEN}"}
    _, by_get, _ = await raw(slack, "users.info", verb="GET", params={"user": "UALICE"}, headers=auth)
    _, by_form, _ = await raw(slack, "users.info", data={"user": "UALICE"}, headers=auth)
    _, by_json, _ = await raw(slack, "users.info", json={"user": "UALICE"}, headers=auth)
    assert by_get == by_form == by_json and by_get["user"]["name"] == "alice"
    _, by_token_param, _ = await raw(slack, "users.info", data={"user": "UBOB", "token": BOT_TOKEN})
    assert by_token_param["user"]["id"] == "UBOB"


async def test_directory(slack: FakeSlack) -> None:
    c = client(slack)
    assert (await c.users_info(user="UGONE"))["user"]["deleted"] is True
    assert (await c.users_info(user="UOTHERBOT"))["user"]["is_bot"] is True
    assert await error_of(c.users_info(user="UNOPE")) == "user_not_found"
    assert (await c.users_lookupByEmail(email="bob@example.com"))["user"]["id"] == "UBOB"
    assert await error_of(c.users_lookupByEmail(email="x@example.com")) == "users_not_found"
    assert (await c.conversations_open(users="UALICE"))["channel"]["id"] == "DUALICE"
    assert await error_of(c.conversations_open(users="UBOT")) == "cannot_dm_bot"
    assert await error_of(c.conversations_open(users="UGONE")) == "user_disabled"


async def test_messages_channels_threads(slack: FakeSlack) -> None:
    c = client(slack)
    first = await c.chat_postMessage(channel="CNOTIFY", text="one")
    second = await c.chat_postMessage(channel="CNOTIFY", text="two")
    assert float(second["ts"]) > float(first["ts"])
    reply = await c.chat_postMessage(channel="CNOTIFY", text="in thread", thread_ts=first["ts"])
    assert [m.text for m in slack.channel_messages("CNOTIFY", thread_ts=first["ts"])] == ["in thread"]
    assert reply["message"]["thread_ts"] == first["ts"]
    assert await error_of(c.chat_postMessage(channel="CNOTIFY", text="x", thread_ts="1.0")) == "thread_not_found"
    assert await error_of(c.chat_postMessage(channel="CNOPE", text="x")) == "channel_not_found"
    assert await error_of(c.chat_postMessage(channel="COUTSIDE", text="x")) == "not_in_channel"
    dm = await c.chat_postMessage(channel="UBOB", text="to a user id")
    assert dm["channel"] == "DUBOB" and slack.dms("UBOB")[0].text == "to a user id"
    updated = await c.chat_update(channel="CNOTIFY", ts=first["ts"], text="one, edited")
    assert updated["text"] == "one, edited" and slack.message("CNOTIFY", first["ts"]).edits == 1
    assert await error_of(c.chat_update(channel="CNOTIFY", ts="123.456", text="x")) == "message_not_found"
    await c.chat_delete(channel="CNOTIFY", ts=second["ts"])
    assert await error_of(c.chat_delete(channel="CNOTIFY", ts=second["ts"])) == "message_not_found"
    await c.chat_postEphemeral(channel="CNOTIFY", user="UALICE", text="psst")
    assert slack.last_ephemeral("UALICE") == "psst"


@pytest.mark.parametrize(
    ("kwargs", "error", "says"),
    [
        ({"text": ""}, "no_text", None),
        ({"text": "x" * 40_001}, "msg_too_long", None),
        ({"blocks": [SECTION] * 51}, "invalid_blocks", "no more than 50 items"),
        (
            {"blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}]},
            "invalid_blocks",
            "must be less than 2001 characters",
        ),
        (
            {"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}]},
            "invalid_blocks",
            "cannot exceed 3000",
        ),
        (
            {"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]},
            "invalid_blocks",
            "must be plain_text",
        ),
        (
            {
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "a"},
                                "action_id": "same",
                            },
                            {
                                "type": "button",
                                "text": {"type": "plain_text", "text": "b"},
                                "action_id": "same",
                            },
                        ],
                    }
                ]
            },
            "invalid_blocks",
            "duplicate action_id",
        ),
        ({"blocks": [{"type": "carousel"}]}, "invalid_blocks", "elements"),
        ({"blocks": [{"type": "bogus_block"}]}, "invalid_blocks", "unsupported type"),
        (
            {"blocks": [{**SECTION, "block_id": "a"}, {**SECTION, "block_id": "a"}]},
            "invalid_blocks",
            "duplicate block_id",
        ),
        (
            {"text": "x", "metadata": {"event_type": "access_request"}},
            "invalid_metadata_format",
            "event_payload",
        ),
    ],
)
async def test_slack_limits(slack: FakeSlack, kwargs: dict[str, Any], error: str, says: str | None) -> None:
    with pytest.raises(SlackApiError) as failed:
        await client(slack).chat_postMessage(channel="CNOTIFY", **kwargs)
    assert failed.value.response["error"] == error
    if says:
        assert any(says in m for m in failed.value.response["response_metadata"]["messages"])
    assert slack.channel_messages("CNOTIFY") == []


async def test_a_block_seen_before_is_judged_as_it_was_the_first_time(slack: FakeSlack) -> None:
    """The fake keeps slack_sdk's verdict on each block it has checked: the same block gets the same answer, at the
    place it has in each message, and a block that differs in any way is checked anew."""
    c = client(slack)
    fits = {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3000}}
    too_long = {"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}
    answers = []
    for blocks in ([fits, too_long], [fits, too_long], [too_long, fits]):
        with pytest.raises(SlackApiError) as failed:
            await c.chat_postMessage(channel="CNOTIFY", text="x", blocks=blocks)
        assert failed.value.response["error"] == "invalid_blocks"
        answers.append(failed.value.response["response_metadata"]["messages"])
    assert answers[0] == answers[1]
    assert any("cannot exceed 3000" in m and "json-pointer:/blocks/1]" in m for m in answers[0])
    assert answers[2] == [m.replace("/blocks/1", "/blocks/0") for m in answers[0]]
    await c.chat_postMessage(channel="CNOTIFY", text="x", blocks=[fits])
    await c.chat_postMessage(channel="CNOTIFY", text="x", blocks=[fits])
    assert len(slack.channel_messages("CNOTIFY")) == 2
    with pytest.raises(SlackApiError) as failed:
        await c.chat_postMessage(channel="CNOTIFY", text="x", blocks=[{**fits, "type": "bogus_block"}])
    assert any("unsupported type" in m for m in failed.value.response["response_metadata"]["messages"])


def modal(**overrides: Any) -> dict[str, Any]:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Title"}, "blocks": [SECTION]}
    view.update(overrides)
    return view


async def test_views_limits_and_triggers(slack: FakeSlack) -> None:
    c = client(slack)
    trigger = slack.issue_trigger("UALICE")
    for bad, says in [
        (modal(title={"type": "plain_text", "text": "t" * 25}), "less than 25 characters"),
        (modal(private_metadata="p" * 3001), "less than 3001 characters"),
        (modal(blocks=[SECTION] * 101), "no more than 100 items"),
        (
            modal(
                blocks=[
                    {
                        "type": "input",
                        "label": {"type": "plain_text", "text": "x"},
                        "element": {"type": "plain_text_input", "action_id": "v"},
                    }
                ]
            ),
            "submit is required",
        ),
    ]:
        with pytest.raises(SlackApiError) as failed:
            await c.views_open(trigger_id=trigger, view=bad)
        assert failed.value.response["error"] == "invalid_arguments"
        assert any(says in m for m in failed.value.response["response_metadata"]["messages"])
    opened = await c.views_open(trigger_id=trigger, view=modal())
    assert slack.open_views("UALICE")[0]["id"] == opened["view"]["id"]
    assert await error_of(c.views_open(trigger_id=trigger, view=modal())) == "exchanged_trigger_id"
    old = slack.issue_trigger("UBOB")
    user, _, used = slack.triggers[old]
    slack.triggers[old] = (user, time.monotonic() - 3.5, used)
    assert await error_of(c.views_open(trigger_id=old, view=modal())) == "expired_trigger_id"
    assert await error_of(c.views_open(trigger_id="made-up", view=modal())) == "invalid_trigger_id"
    updated = await c.views_update(
        view_id=opened["view"]["id"], view=modal(title={"type": "plain_text", "text": "Next"})
    )
    assert updated["view"]["title"]["text"] == "Next"
    assert await error_of(c.views_update(view_id="VNOPE", view=modal())) == "not_found"
    home = await c.views_publish(user_id="UBOB", view={"type": "home", "blocks": [SECTION]})
    assert slack.home("UBOB")["id"] == home["view"]["id"]  # type: ignore[index]
    assert (
        await error_of(c.views_publish(user_id="UBOB", view={"type": "home", "blocks": [SECTION] * 101}))
        == "invalid_arguments"
    )


async def test_fault_injection(slack: FakeSlack) -> None:
    slack.inject(
        "auth.test",
        Fault.http(503),
        Fault.rate_limited(7),
        Fault.slack_error("team_not_found"),
        Fault.latency(0.3),
    )
    status, _, _ = await raw(slack, "auth.test", data={"token": BOT_TOKEN})
    assert status == 503
    status, body, headers = await raw(slack, "auth.test", data={"token": BOT_TOKEN})
    assert (status, body["error"], headers["Retry-After"]) == (429, "ratelimited", "7")
    assert await error_of(client(slack).auth_test()) == "team_not_found"
    started = time.monotonic()
    assert (await client(slack).auth_test())["ok"] is True
    assert time.monotonic() - started >= 0.3
    assert (await client(slack).auth_test())["ok"] is True  # the queue is empty again


async def test_response_url_records_posts(slack: FakeSlack) -> None:
    url = slack.new_response_url("UALICE", "CGENERAL")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            url, json={"text": "only you", "response_type": "ephemeral", "replace_original": False}
        ) as r:
            assert r.status == 200
        async with http.post(slack.base_url + "/response/unknown", json={"text": "x"}) as r:
            assert r.status == 404
    assert slack.last_ephemeral("UALICE") == "only you"
    assert slack.calls_to("response_url") == [
        {"text": "only you", "response_type": "ephemeral", "replace_original": False}
    ]


async def test_socket_mode_hello_envelopes_acks_disconnect(slack: FakeSlack) -> None:
    url = (await client(slack, APP_TOKEN).apps_connections_open(app_token=APP_TOKEN))["url"]
    assert url.startswith("ws://127.0.0.1:")
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        hello = await ws.receive_json()
        assert hello["type"] == "hello"

        async def bot_side() -> dict[str, Any]:
            envelope = await ws.receive_json()
            await ws.send_json({"envelope_id": envelope["envelope_id"], "payload": {"text": "got it"}})
            return envelope

        sent = asyncio.ensure_future(slack.socket.send("slash_commands", {"command": "/access-request"}))
        envelope = await bot_side()
        ack = await sent
        assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
        assert ack["payload"] == {"text": "got it"}
        event = asyncio.ensure_future(slack.socket.send("events_api", {"event_id": "Ev1"}, retry_attempt=2))
        retried = await bot_side()
        await event
        assert (retried["retry_attempt"], retried["accepts_response_payload"]) == (2, False)
        await slack.socket.disconnect()
        assert (await ws.receive_json())["type"] == "disconnect"
    assert slack.socket.acks[0]["payload"] == {"text": "got it"}
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(url)  # a URL connects once
    assert json.dumps(slack.socket.envelopes)
