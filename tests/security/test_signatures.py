"""Requests come only from Slack: forged, stale, unsigned and replayed requests get 401 and change nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bot.config import Settings
from bot.service_layer import services
from bot.slack.runner import BotServer
from bot.testing import BOT_TOKEN, SIGNING_SECRET, FakeSlack, payloads, sign
from tests.databases import sqlite_url
from tests.slack.conftest import World

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def command_body(slack: FakeSlack, text: str) -> bytes:
    return urlencode(payloads.slash_command(slack, "UREQ", text)).encode()


async def assert_nothing_happened(world: World) -> None:
    assert (await services.list_requests(uow=world.bot.db.uow())).total == 0
    assert world.slack.ephemerals == [] and world.slack.messages == {}


async def test_a_signed_request_is_accepted(http_world: World) -> None:
    body = command_body(http_world.slack, "prod-db <@UALICE> <@UBOB> real")
    reply = await http_world.slack.post_raw(body, {**FORM, **sign(SIGNING_SECRET, body)})
    assert reply.status == 200 and "is sent to" in reply.text


@pytest.mark.parametrize("attack", ["forged", "stale", "unsigned", "replayed with another body"])
async def test_attacks_get_401_and_change_nothing(http_world: World, attack: str) -> None:
    slack = http_world.slack
    body = command_body(slack, "prod-db <@UALICE> <@UBOB> forged")
    if attack == "forged":
        headers = sign("a-guessed-secret", body)
    elif attack == "stale":
        headers = sign(SIGNING_SECRET, body, timestamp=int(time.time()) - 6 * 60)
    elif attack == "unsigned":
        headers = {}
    else:
        headers = sign(SIGNING_SECRET, command_body(slack, "help"))  # a genuine request's headers
    reply = await slack.post_raw(body, {**FORM, **headers})
    assert reply.status == 401
    await assert_nothing_happened(http_world)


async def test_a_forged_click_cannot_decide(http_world: World) -> None:
    slack = http_world.slack
    view = await services.create_request(
        uow=http_world.bot.db.uow(),
        requester_id="UREQ",
        resource="db",
        justification="j",
        approvers=[services.Approver("UALICE"), services.Approver("UBOB")],
    )
    await http_world.settled()
    payload = payloads.block_actions_from_message(slack, "UALICE", slack.dms("UALICE")[0], "approve_request")
    body = urlencode({"payload": json.dumps(payload)}).encode()
    reply = await slack.post_raw(body, {**FORM, **sign("not-the-secret", body)})
    assert reply.status == 401
    assert (await services.get(uow=http_world.bot.db.uow(), request_id=view.id)).decisions == ()


async def test_socket_mode_connects_only_with_the_app_token(tmp_path: Path) -> None:
    async with FakeSlack() as slack:
        for token in ("xapp-not-ours", BOT_TOKEN):
            settings = Settings(
                _env_file=None,
                slack_bot_token=BOT_TOKEN,
                slack_app_token=token,
                slack_api_url=slack.api_url,
                database_url=sqlite_url(tmp_path / "s.db"),
            )
            bot = BotServer(settings)
            with pytest.raises(Exception, match=r"invalid_auth|not_allowed_token_type"):
                await bot.start()
            await bot.stop()
        assert slack.socket.connects == 0


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"payload=%7Bnot+json", FORM["Content-Type"]), (b"{not json", "application/json")],
    ids=["form", "json"],
)
async def test_a_body_that_is_not_slacks_gets_400_and_changes_nothing(
    http_world: World, body: bytes, content_type: str
) -> None:
    reply = await http_world.slack.post_raw(body, {"Content-Type": content_type, **sign(SIGNING_SECRET, body)})
    assert reply.status == 400
    await assert_nothing_happened(http_world)
