"""Only the named approvers decide, only the requester cancels, admin commands only for ADMIN_USERS; every
refusal is answered clearly and written to the audit log."""

from __future__ import annotations

from sqlmodel import select

from bot.adapters.tables import AuditRow
from bot.service_layer import services
from bot.testing import payloads
from tests.slack.conftest import World, eventually


async def refusals(world: World) -> list[tuple[str | None, str]]:
    async with world.bot.db.uow() as uow:
        rows = (await uow.session.execute(select(AuditRow).order_by(AuditRow.id))).scalars()  # type: ignore[attr-defined]
        return [(r.actor_id, r.action) for r in rows if r.action.startswith("refused.")]


async def new_request(world: World) -> str:
    await world.slack.slash("UREQ", "prod-db <@UALICE> <@UBOB> authz")
    request_id = world.slack.last_ephemeral("UREQ").split("Request ")[1].split(" ")[0]
    await world.settled()
    return request_id


async def test_strangers_and_the_requester_cannot_decide(http_world: World) -> None:
    slack = http_world.slack
    request_id = await new_request(http_world)
    alice_dm = slack.dms("UALICE")[0]
    for who in ("UDAN", "UREQ"):  # a forwarded button; the requester pressing an approver's button
        await slack.click(who, alice_dm, "approve_request")
        await eventually(lambda w=who: "Only the approvers named on request" in slack.last_ephemeral(w))
    view = await services.get(uow=http_world.bot.db.uow(), request_id=request_id)
    assert view.decisions == ()
    assert await refusals(http_world) == [("UDAN", "refused.decision.approve"), ("UREQ", "refused.decision.approve")]


async def test_a_button_naming_no_request_is_refused(http_world: World) -> None:
    slack = http_world.slack
    await new_request(http_world)
    payload = payloads.block_actions_from_message(slack, "UALICE", slack.dms("UALICE")[0], "approve_request")
    payload["actions"][0]["value"] = "<!channel> DROP TABLE"
    await slack.deliver("interactive", payload)
    await eventually(lambda: "does not belong to an access request" in slack.last_ephemeral("UALICE"))


async def test_only_the_requester_cancels(http_world: World) -> None:
    request_id = await new_request(http_world)
    await http_world.slack.slash("UALICE", f"cancel {request_id}")
    assert f"Only the person who made request {request_id} can cancel it." in http_world.slack.last_ephemeral("UALICE")
    assert (await refusals(http_world)) == [("UALICE", "refused.request.cancel")]
    assert (await services.get(uow=http_world.bot.db.uow(), request_id=request_id)).status.value == "PENDING"


async def test_others_requests_are_private(http_world: World) -> None:
    request_id = await new_request(http_world)
    await http_world.slack.slash("UDAN", f"status {request_id}")
    assert "You can only see requests you made or were asked to approve" in http_world.slack.last_ephemeral("UDAN")
    assert (await refusals(http_world)) == [("UDAN", "refused.status")]


async def test_admin_commands_only_for_admins(http_world: World) -> None:
    slack = http_world.slack
    request_id = await new_request(http_world)
    for text in ("list all", f"export {request_id}", "outbox", "outbox retry"):
        await slack.slash("UDAN", text)
        assert "Only the bot's admins (ADMIN_USERS) can" in slack.last_ephemeral("UDAN"), text
    assert [a for _, a in await refusals(http_world)] == [
        "refused.admin.list",
        "refused.admin.export",
        "refused.admin.see",
        "refused.admin.see",
    ]
    await slack.slash("UCAROL", "list all")
    assert request_id in slack.last_ephemeral("UCAROL")
    await slack.slash("UCAROL", f"export {request_id}")
    trail = slack.last_ephemeral("UCAROL")
    assert f"Audit trail of {request_id}" in trail and "`request.created`" in trail and "<@UREQ>" in trail
    await slack.slash("UCAROL", f"status {request_id}")
    assert f"Access request {request_id}" in slack.last_ephemeral("UCAROL")
    await slack.slash("UCAROL", "outbox")
    assert "Every notice was delivered." in slack.last_ephemeral("UCAROL")
