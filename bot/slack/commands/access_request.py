"""``/access-request``: ack fast, turn the text into a service call, answer with a pure builder."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.errors import DomainError
from bot.domain.values import Status
from bot.service_layer import services
from bot.service_layer.results import Page, RequestView
from bot.slack import blocks as b
from bot.slack import forms
from bot.slack import parser as p
from bot.slack.commands import admin
from bot.slack.common import guarded, reply
from bot.slack.deps import Deps
from bot.slack.directory import resolve_approvers

COMMAND = "/access-request"
log = logging.getLogger(__name__)
ACK_BUDGET = 2.0  # seconds of Slack's 3 spent working before acking with "working on it"
WORKING = "Working on it: Slack is slow to answer. I'll reply here in a moment."
STATUSES = {s.value.lower(): s for s in Status}


def register(app: AsyncApp, deps: Deps) -> None:
    @guarded
    async def on_command(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond) -> None:
        user = command["user_id"]
        parsed = p.parse(command.get("text", ""), approvers=deps.policy.approvers)
        try:
            match parsed:
                case p.Invalid(message):
                    await ack(**reply(b.notice(f":warning: {message}")))
                case p.Help():
                    await ack(**reply(b.help_message(p.USAGE)))
                case p.OpenForm():
                    await ack()
                    await client.views_open(trigger_id=command["trigger_id"], view=forms.request_modal(deps.policy))
                case p.ListRequests(which, page):
                    await ack(**reply(await _list(deps, user, which, page)))
                case p.ShowStatus(request_id):
                    await ack(**reply(b.status_card(await _visible(deps, user, request_id))))
                case p.Cancel(request_id):
                    await services.cancel(uow=deps.uow(), request_id=request_id, user_id=user)
                    await ack(**reply(b.notice(f"Request {request_id} is cancelled.")))
                case p.Export(request_id):
                    await ack(**reply(await admin.export(deps, user, request_id)))
                case p.Outbox(retry):
                    await ack(**reply(await admin.outbox(deps, user, retry=retry)))
                case p.Create():
                    await _create(deps, parsed, command, client, ack, respond)
        except DomainError as refused:
            if ack.response is None:
                await ack(**reply(b.notice(f":warning: {refused.message}")))
            else:
                await respond(**reply(b.notice(f":warning: {refused.message}")), response_type="ephemeral")

    app.command(COMMAND)(on_command)


async def _create(
    deps: Deps,
    parsed: p.Create,
    command: dict[str, Any],
    client: AsyncWebClient,
    ack: AsyncAck,
    respond: AsyncRespond,
) -> None:
    async def store() -> RequestView:
        # Stored while Slack is asked who the approvers are (the longer of two round trips instead of both):
        # nobody is told of it unless they are people who can approve it, and it is removed if not.
        return await services.create_request_while_checking(
            uow=deps.uow(),
            approver_ids=parsed.approver_ids,
            check=resolve_approvers(
                client,
                parsed.approver_ids,
                requester_id=command["user_id"],
                required=deps.policy.approvers,
                recent=deps.recent_approvers,
            ),
            requester_id=command["user_id"],
            requester_name=command.get("user_name", ""),
            resource=parsed.resource,
            justification=parsed.justification,
            duration_minutes=parsed.duration_minutes,
            policy=deps.policy,
            known=deps.recent_approvers.get(parsed.approver_ids),
            on_stored=confirm,
        )

    # Approvers who passed their check lately: the person is answered once the request is stored, and told later
    # if the check (still made, still deciding whether anybody is told) withdraws it; a check Slack cannot answer
    # (an outage, a timeout) leaves the recent one standing. At 5 in flight on a slow VM
    # (alternating, 5 rounds on PostgreSQL, with the dispatcher's places under a backlog): the ack 1.55x -> 1.15x the
    # baseline's, both DMs 1.45x -> 1.31x. Against Slack itself, where users.info crosses the internet, the ack no
    # longer waits for it.
    confirmed: RequestView | None = None

    async def confirm(view: RequestView) -> None:
        nonlocal confirmed
        if working is None:  # else the "working on it" ack went, and the outcome follows through response_url
            timer.cancel()
            confirmed = view
            await ack(**reply(b.confirmation(view)))

    # The request is stored in this coroutine (no task to hand it to: each hand-off is a turn of the event loop
    # that a busy bot makes the person wait for). If it takes longer than ACK_BUDGET, a timer acks with "working
    # on it" meanwhile, and the outcome follows through response_url.
    working: asyncio.Future[Any] | None = None  # the "working on it" ack, once the timer has fired

    def ack_working() -> None:
        nonlocal working
        working = asyncio.ensure_future(ack(**reply(b.notice(WORKING))))

    timer = asyncio.get_running_loop().call_later(ACK_BUDGET, ack_working)
    try:
        with deps.creating():
            view = await store()
    except DomainError as refused:
        if confirmed is not None:
            withdrawn = f"Request {confirmed.id} is withdrawn, and nobody was told of it: {refused.message}"
            await respond(**reply(b.notice(f":warning: {withdrawn}")), response_type="ephemeral")
            return
        if working is None:
            raise  # acked with the refusal by the command's handler
        await working
        await respond(**reply(b.notice(f":warning: {refused.message}")), response_type="ephemeral")
        return
    except Exception:
        if confirmed is None:
            raise  # the command's guard logs it and apologises in the ack
        log.exception("checking the approvers of %s failed", confirmed.id)
        rid = confirmed.id
        unsure = f"Checking the approvers of {rid} failed. `/access-request status {rid}` shows where it stands."
        await respond(**reply(b.notice(f":warning: {unsure}")), response_type="ephemeral")
        return
    finally:
        timer.cancel()
    if confirmed is not None:
        return
    if working is None:
        await ack(**reply(b.confirmation(view)))
    else:
        await working
        await respond(**reply(b.confirmation(view)), response_type="ephemeral", replace_original=False)


async def _visible(deps: Deps, user: str, request_id: str) -> RequestView:
    view = await services.get(uow=deps.uow(), request_id=request_id)
    if user != view.requester_id and not view.is_approver(user) and user not in deps.admins:
        message = f"You can only see requests you made or were asked to approve; {request_id} is neither."
        await services.record_refusal(
            uow=deps.uow(), actor_id=user, action="status", request_id=request_id, message=message
        )
        raise DomainError(message)
    return view


async def _list(deps: Deps, user: str, which: str, page: int) -> tuple[str, list[Any]]:
    uow = deps.uow
    if which == "todo":
        todo = await services.pending_for_approver(uow=uow(), approver_id=user, limit=100)
        per = 10
        chunk = tuple(todo[(page - 1) * per : page * per])
        result = Page(chunk, len(todo), page, per)
        return b.request_list("Awaiting your decision", result, "list todo")
    if which == "mine":
        result = await services.list_requests(uow=uow(), requester_id=user, page=page)
        return b.request_list("Your requests", result, "list mine")
    if which == "all":
        await admin.require_admin(deps, user, "list everyone's requests")
        result = await services.list_requests(uow=uow(), page=page)
        return b.request_list("All requests", result, "list all")
    result = await services.list_requests(uow=uow(), status=STATUSES[which], involving=user, page=page)
    return b.request_list(f"{which.capitalize()} requests involving you", result, f"list {which}")
