"""A slash command naming approvers who passed their users.info check lately is answered as soon as its request is
stored; the check is still made, and still decides whether anybody is told of the request."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bot.domain.errors import RequestNotFound
from bot.domain.values import Approver
from bot.service_layer import services
from bot.slack.directory import RecentApprovers
from bot.testing import Fault
from tests.slack.conftest import World, eventually


def _rid(text: str) -> str:
    return text.split("Request ")[1].split(" ")[0]


async def _first_request(world: World) -> str:
    reply = await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> incident 41")
    await world.settled()
    return _rid(reply.text)


async def test_known_approvers_are_confirmed_before_slack_answers_and_told_after_the_check(world: World) -> None:
    await _first_request(world)
    asked = sum(1 for method, _ in world.slack.calls if method == "users.info")
    world.slack.inject("users.info", Fault.latency(1.0), Fault.latency(1.0))
    reply = await world.slack.slash("UREQ", "staging-db <@UALICE> <@UBOB> incident 42")
    assert reply.status == 200 and reply.seconds < 0.9  # not waiting for Slack's answers
    assert "is sent to <@UALICE> and <@UBOB>" in reply.text
    rid = _rid(reply.text)
    assert world.slack.dm_about("UALICE", rid) is None  # nobody is told before the check has passed
    await eventually(lambda: world.slack.dm_about("UALICE", rid) is not None)
    await eventually(lambda: world.slack.dm_about("UBOB", rid) is not None)
    assert sum(1 for method, _ in world.slack.calls if method == "users.info") == asked + 2  # still checked


async def test_an_approver_deactivated_since_withdraws_the_request_and_the_requester_is_told(world: World) -> None:
    await _first_request(world)
    world.slack.add_person(replace(world.slack.people["UBOB"], deleted=True))
    world.slack.inject("users.info", Fault.latency(0.5), Fault.latency(0.5))
    reply = await world.slack.slash("UREQ", "staging-db <@UALICE> <@UBOB> incident 42")
    assert "is sent to <@UALICE> and <@UBOB>" in reply.text  # known lately: answered at once
    rid = _rid(reply.text)
    await eventually(lambda: "is withdrawn" in world.slack.last_ephemeral("UREQ"))
    told = world.slack.last_ephemeral("UREQ")
    assert f"Request {rid} is withdrawn, and nobody was told of it" in told
    assert "<@UBOB>'s account is deactivated" in told
    await world.settled()
    await asyncio.sleep(0.3)
    assert world.slack.dm_about("UALICE", rid) is None and world.slack.dm_about("UBOB", rid) is None
    with pytest.raises(RequestNotFound):
        await services.get(uow=world.bot.db.uow(), request_id=rid)
    # Bob is no longer taken as known: the next request naming him is refused in its answer.
    again = await world.slack.slash("UREQ", "staging-db <@UALICE> <@UBOB> incident 43")
    assert "deactivated" in again.text and "is sent to" not in again.text


def test_recent_approvers_expire_and_are_bounded() -> None:
    now = [0.0]
    recent = RecentApprovers(ttl=600, size=2, clock=lambda: now[0])
    alice, bob, carol = Approver("UALICE", "Alice"), Approver("UBOB", "Bob"), Approver("UCAROL", "Carol")
    recent.remember([alice, bob])
    assert recent.get(["UBOB", "UALICE"]) == [bob, alice]
    assert recent.get(["UALICE", "UCAROL"]) is None  # all of them, or none
    recent.remember([carol])
    assert recent.get(["UALICE"]) is None  # the oldest went beyond ``size``
    now[0] = 601.0
    assert recent.get(["UCAROL"]) is None  # checked too long ago
    recent.remember([carol])
    recent.forget("UCAROL")
    assert recent.get(["UCAROL"]) is None


async def test_a_check_slack_cannot_answer_leaves_the_recent_one_standing(world: World) -> None:
    await _first_request(world)
    world.slack.inject("users.info", *[Fault.http(500)] * 12)  # every attempt, retries included
    reply = await world.slack.slash("UREQ", "staging-db <@UALICE> <@UBOB> incident 42")
    assert "is sent to <@UALICE> and <@UBOB>" in reply.text
    rid = _rid(reply.text)
    await eventually(lambda: world.slack.dm_about("UALICE", rid) is not None)
    await eventually(lambda: world.slack.dm_about("UBOB", rid) is not None)
    assert "withdrawn" not in world.slack.last_ephemeral("UREQ")
