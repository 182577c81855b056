"""Every surface end to end, in HTTP mode and in Socket Mode: forms, deny, cancel, list, status, help, Home."""

from __future__ import annotations

from pathlib import Path

from bot.service_layer import services
from bot.testing import text_of
from tests.slack.conftest import World, eventually, start_world, stop_world

REQUEST = "prod-db <@UALICE|alice> <@UBOB|bob> Investigating incident 42"


async def create(world: World, text: str = REQUEST, user: str = "UREQ") -> str:
    await world.slack.slash(user, text)
    shown = world.slack.last_ephemeral(user)
    assert "is sent to" in shown, shown
    request_id = shown.split("Request ")[1].split(" ")[0]
    await eventually(lambda: any(request_id in m.text for m in world.slack.channel_messages("CNOTIFY")))
    await world.settled()
    return request_id


def latest(world: World, user: str, request_id: str) -> str:
    for message in reversed(world.slack.dms(user)):
        if request_id in message.text:
            return text_of(message.text, message.blocks)
    raise AssertionError(f"{user} has no DM about {request_id}")


async def test_modal_request_with_inline_errors_then_success(world: World) -> None:
    slack = world.slack
    reply = await slack.slash("UREQ", "")
    assert reply.status == 200 and reply.body in (None, {})
    [form] = slack.open_views("UREQ")
    assert form["title"]["text"] == "Request access"

    bad = {
        "resource": "prod-db",
        "approver_1": "UREQ",
        "approver_2": "UBOB",
        "justification": "incident",
        "duration": "soon",
    }
    reply = await slack.submit("UREQ", form, bad)
    assert reply.body == {
        "response_action": "errors",
        "errors": {"duration": "Write a duration like 30m, 4h or 2d."},
    }
    reply = await slack.submit("UREQ", form, {**bad, "duration": "2d"})
    assert reply.body == {
        "response_action": "errors",
        "errors": {"approver_1": "You cannot approve your own request: name two other people."},
    }
    reply = await slack.submit("UREQ", form, {**bad, "duration": "2d", "approver_1": "UOTHERBOT"})
    assert reply.body["errors"] == {"approver_1": "<@UOTHERBOT> is an app, not a person: approvers must be people."}  # type: ignore[index]
    reply = await slack.submit("UREQ", form, {**bad, "duration": "2d", "approver_1": "UGONE"})
    assert reply.body["errors"] == {"approver_1": "<@UGONE>'s account is deactivated: choose someone else."}  # type: ignore[index]
    reply = await slack.submit("UREQ", form, {**bad, "duration": "2d", "approver_1": "UALICE", "justification": "   "})
    assert "justification" in reply.body["errors"]  # type: ignore[index]
    assert slack.open_views("UREQ"), "the form stays open while it has errors"

    reply = await slack.submit("UREQ", form, {**bad, "duration": "2d", "approver_1": "UALICE"})
    assert reply.body in (None, {}) and slack.open_views("UREQ") == []
    await eventually(lambda: len(slack.dms("UREQ")) == 1 and len(slack.dms("UALICE")) == 1)
    assert "is sent to <@UALICE> and <@UBOB>" in text_of(slack.dms("UREQ")[0].text, slack.dms("UREQ")[0].blocks)
    assert "2 days" in text_of(slack.dms("UALICE")[0].text, slack.dms("UALICE")[0].blocks)


async def test_deny_with_a_reason(world: World) -> None:
    slack = world.slack
    request_id = await create(world)
    await slack.click("UBOB", slack.dms("UBOB")[-1], "deny_request")
    await eventually(lambda: len(slack.open_views("UBOB")) == 1)
    [modal] = slack.open_views("UBOB")
    assert request_id in text_of("", modal["blocks"])
    reply = await slack.submit("UBOB", modal, {"reason": "Use the read replica <!channel>"})
    assert reply.body in (None, {})
    await eventually(lambda: len(slack.dms("UREQ")) == 1)
    await world.settled()
    outcome = text_of(slack.dms("UREQ")[0].text, slack.dms("UREQ")[0].blocks)
    assert "was denied by <@UBOB>" in outcome and "Use the read replica &lt;!channel&gt;" in outcome
    for user in ("UALICE", "UBOB"):
        shown = latest(world, user, request_id)
        assert "*Denied*" in shown and "[Approve]" not in shown and "[Deny]" not in shown
    channel = slack.channel_messages("CNOTIFY")[0]
    assert channel.metadata["event_payload"]["status"] == "DENIED"  # type: ignore[index]
    [thread] = slack.channel_messages("CNOTIFY", thread_ts=channel.ts)
    assert "<@UBOB> denied" in thread.text


async def test_cancel_by_command_updates_every_copy(world: World) -> None:
    slack = world.slack
    request_id = await create(world)
    await slack.slash("UALICE", f"cancel {request_id}")
    assert "Only the person who made request" in slack.last_ephemeral("UALICE")
    await slack.slash("UREQ", f"cancel {request_id}")
    assert slack.last_ephemeral("UREQ") == f"Request {request_id} is cancelled."
    await eventually(lambda: "*Cancelled*" in latest(world, "UALICE", request_id))
    await world.settled()
    assert "[Approve]" not in latest(world, "UBOB", request_id)
    await slack.slash("UREQ", f"cancel {request_id}")
    assert "already cancelled" in slack.last_ephemeral("UREQ")


async def test_list_status_help(world: World) -> None:
    slack = world.slack
    first = await create(world)
    second = await create(world, "staging-db <@UALICE> <@UCAROL> testing a migration")
    await slack.slash("UREQ", "list")
    mine = slack.last_ephemeral("UREQ")
    assert "Your requests" in mine and first in mine and second in mine and "Page 1 of 1 · 2 in all" in mine
    assert mine.index(second) < mine.index(first)  # newest first
    await slack.slash("UALICE", "list todo")
    assert first in slack.last_ephemeral("UALICE") and second in slack.last_ephemeral("UALICE")
    await slack.slash("UBOB", "list todo")
    assert first in slack.last_ephemeral("UBOB") and second not in slack.last_ephemeral("UBOB")
    await slack.slash("UBOB", "list approved")
    assert "Nothing here." in slack.last_ephemeral("UBOB")
    await slack.slash("UREQ", f"status {first.lower()}")
    status = slack.last_ephemeral("UREQ")
    assert f"Access request {first}" in status and "Pending" in status
    await slack.slash("UDAN", f"status {first}")
    assert "You can only see requests you made or were asked to approve" in slack.last_ephemeral("UDAN")
    await slack.slash("UREQ", "status AR-ZZZZZZZZ")
    assert "There is no request AR-ZZZZZZZZ" in slack.last_ephemeral("UREQ")
    await slack.slash("UREQ", "help")
    assert "Ask for access" in slack.last_ephemeral("UREQ") and "Usage:" in slack.last_ephemeral("UREQ")


async def test_list_paginates_and_open_requests_are_limited(world: World) -> None:
    slack = world.slack
    ids = []
    for i in range(10):
        view = await services.create_request(
            uow=world.bot.db.uow(),
            requester_id="UDAN",
            resource=f"db-{i}",
            justification="j",
            approvers=[services.Approver("UALICE"), services.Approver("UBOB")],
        )
        ids.append(view.id)
    await slack.slash("UDAN", REQUEST)
    assert "You already have 10 open requests (the limit is 10)" in slack.last_ephemeral("UDAN")
    await services.cancel(uow=world.bot.db.uow(), request_id=ids[0], user_id="UDAN")
    await create(world, user="UDAN")
    await slack.slash("UDAN", "list mine")
    assert "Page 1 of 2 · 11 in all · next: `/access-request list mine 2`" in slack.last_ephemeral("UDAN")
    await slack.slash("UDAN", "list mine 2")
    assert "Page 2 of 2" in slack.last_ephemeral("UDAN") and "db-0" in slack.last_ephemeral("UDAN")


async def test_app_home_for_requester_and_approver(world: World) -> None:
    slack = world.slack
    request_id = await create(world)
    await slack.open_home("UALICE")
    await eventually(lambda: slack.home("UALICE") is not None)
    home = text_of("", slack.home("UALICE")["blocks"])  # type: ignore[index]
    assert "Awaiting my decision" in home and request_id in home and "[Approve]" in home
    await slack.click_home("UALICE", "approve_request", request_id)
    await eventually(lambda: "You chose to approve" in text_of("", slack.home("UALICE")["blocks"]))  # type: ignore[index]
    assert "Nothing is waiting for you." in text_of("", slack.home("UALICE")["blocks"])  # type: ignore[index]
    await eventually(lambda: "<@UALICE> approved" in latest(world, "UBOB", request_id))

    await slack.open_home("UREQ")
    await eventually(lambda: slack.home("UREQ") is not None)
    mine = text_of("", slack.home("UREQ")["blocks"])  # type: ignore[index]
    assert "My requests" in mine and request_id in mine and "[Cancel]" in mine
    await slack.click_home("UREQ", "cancel_request", request_id)
    await eventually(lambda: f"Request {request_id} is cancelled." in text_of("", slack.home("UREQ")["blocks"]))  # type: ignore[index]
    assert "[Cancel]" not in text_of("", slack.home("UREQ")["blocks"])  # type: ignore[index]
    await eventually(lambda: "*Cancelled*" in latest(world, "UBOB", request_id))


async def test_app_home_event_retries_publish_once(world: World) -> None:
    slack = world.slack
    await slack.open_home("UBOB", event_id="Ev0RETRY")
    await eventually(lambda: len(slack.calls_to("views.publish")) == 1)
    await slack.open_home("UBOB", event_id="Ev0RETRY", retry_attempt=1)
    await slack.open_home("UCAROL")
    await eventually(lambda: len(slack.calls_to("views.publish")) == 2)
    assert [c["user_id"] for c in slack.calls_to("views.publish")] == ["UBOB", "UCAROL"]


async def test_strangers_click_is_refused_and_changes_nothing(world: World) -> None:
    slack = world.slack
    request_id = await create(world)
    forwarded = slack.dms("UALICE")[-1]
    for action in ("approve_request", "deny_request"):
        reply = await slack.click("UCAROL", forwarded, action)
        assert reply.status == 200
        await eventually(lambda: "Only the approvers named on request" in slack.last_ephemeral("UCAROL"))
    await slack.click("UREQ", forwarded, "approve_request")
    await eventually(lambda: "Only the approvers named" in slack.last_ephemeral("UREQ"))
    assert slack.open_views("UCAROL") == []
    view = await services.get(uow=world.bot.db.uow(), request_id=request_id)
    assert view.decisions == () and view.status.value == "PENDING"
    assert "[Approve]" in latest(world, "UALICE", request_id)


async def test_click_on_a_terminal_request_and_a_repeated_click(world: World) -> None:
    slack = world.slack
    request_id = await create(world)
    stale_alice = slack.dms("UALICE")[-1].snapshot()
    stale_bob = slack.dms("UBOB")[-1].snapshot()
    await slack.click("UALICE", stale_alice, "approve_request")
    await eventually(lambda: "<@UALICE> approved" in latest(world, "UBOB", request_id))
    await slack.click("UALICE", stale_alice, "approve_request")  # the same button again
    await eventually(lambda: "nothing changed" in slack.last_ephemeral("UALICE"))
    await slack.click("UALICE", stale_alice, "deny_request")
    await eventually(lambda: "a decision cannot be changed" in slack.last_ephemeral("UALICE"))
    await slack.slash("UREQ", f"cancel {request_id}")
    await slack.click("UBOB", stale_bob, "approve_request")
    await eventually(lambda: "already cancelled" in slack.last_ephemeral("UBOB"))
    view = await services.get(uow=world.bot.db.uow(), request_id=request_id)
    assert view.status.value == "CANCELLED" and len(view.decisions) == 1


async def test_longest_resource_and_justification_render(world: World) -> None:
    slack = world.slack
    resource, justification = "r" * 199 + "<", "&" * 2000
    request_id = await create(world, f"{resource} <@UALICE> <@UBOB> {justification}")
    shown = latest(world, "UALICE", request_id)
    assert "r" * 199 + "&lt;" in shown and "&amp;" * 10 in shown
    assert shown.count("&amp;") == 2000  # all of it, over several blocks, each within Slack's limit
    assert all(call.get("blocks") for call in slack.calls_to("chat.postMessage"))
    view = await services.get(uow=world.bot.db.uow(), request_id=request_id)
    assert view.resource == resource and view.justification == justification


async def test_a_request_nobody_decides_expires(tmp_path: Path) -> None:
    world = await start_world(tmp_path, "http", request_ttl_hours=0.5 / 3600, expire_check_seconds=0.2)
    slack = world.slack
    try:
        request_id = await create(world)
        await eventually(lambda: "Expired" in latest(world, "UALICE", request_id), timeout=10)
        await world.settled()
        for user in ("UALICE", "UBOB"):
            assert "[Approve]" not in latest(world, user, request_id)
        assert "expired before both approvers decided" in text_of(
            slack.dms("UREQ")[0].text, slack.dms("UREQ")[0].blocks
        )
        assert slack.channel_messages("CNOTIFY")[0].metadata["event_payload"]["status"] == "EXPIRED"  # type: ignore[index]
    finally:
        await stop_world(world)
