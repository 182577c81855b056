"""The baseline: a minimal Bolt AsyncApp that acks and makes the same Slack calls as the bot, keeping its
state in memory. No database, no outbox, no validation beyond what the calls need: the framework's limit.

Run: SLACK_BOT_TOKEN=... SLACK_SIGNING_SECRET=... SLACK_API_URL=... PORT=... python -m bench.baseline_app
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
REQUESTS: dict[str, dict[str, Any]] = {}
COUNTER = itertools.count(1)


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def blocks(rid: str, request: dict[str, Any], buttons: bool) -> list[dict[str, Any]]:
    """The bot's message for a request, block for block (title, summary, justification, progress, context and,
    while the approver has a choice, the buttons), as plain dicts: the same payload to Slack, without the bot's
    building and checking through slack_sdk.models."""

    approvers, approvals = request["approvers"], request["approvals"]
    status = request["status"]
    lines = [
        f":white_check_mark: <@{a}> approved" if a in approvals else f":white_circle: <@{a}> has not decided"
        for a in approvers
    ]
    head = (
        f"*Pending*: {len(approvals)} of {len(approvers)} approvals" if status == "PENDING" else f"*{status.title()}*"
    )
    out: list[dict[str, Any]] = [
        {"type": "header", "block_id": "title", "text": {"type": "plain_text", "text": f"Access request {rid}"}},
        {
            "type": "section",
            "block_id": "summary",
            "fields": [
                mrkdwn(f"*Requested by*\n<@{request['requester']}>"),
                mrkdwn(f"*Resource*\n{request['resource']}"),
                mrkdwn("*Duration*\nnot specified"),
                mrkdwn("*Approvers*\n" + ", ".join(f"<@{a}>" for a in approvers)),
            ],
        },
        {"type": "section", "block_id": "justification-0", "text": mrkdwn(f"*Justification*\n{request['reason']}")},
        {"type": "section", "block_id": "progress", "text": mrkdwn("\n".join([head, *lines]))},
        {
            "type": "context",
            "block_id": "meta",
            "elements": [
                mrkdwn(f"{rid} · {status.title()} · requested <!date^{request['at']}^{{date_short_pretty}}|now>")
            ],
        },
    ]
    if buttons:
        out.append(
            {
                "type": "actions",
                "block_id": "decide",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Approve"},
                        "action_id": "approve_request",
                        "value": rid,
                        "style": "primary",
                    },
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Deny"},
                        "action_id": "deny_request",
                        "value": rid,
                        "style": "danger",
                    },
                ],
            }
        )
    return out


def metadata(rid: str, request: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "request_id": rid,
        "status": request["status"],
        "resource": request["resource"],
        "requester": request["requester"],
        "approvers": request["approvers"],
    }
    return {"event_type": "access_request", "event_payload": payload}


def summary(rid: str, request: dict[str, Any]) -> str:
    return f"Access request {rid} from <@{request['requester']}> for {request['resource']}: {request['status'].lower()}"


def build(session: aiohttp.ClientSession | None = None) -> AsyncApp:
    # One connection pool kept alive for every call, as the bot has (without it each call opens a connection).
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"], session=session)
    app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])

    @app.command("/access-request")
    async def command(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        approvers = MENTION.findall(command["text"])
        for user in approvers:
            await client.users_info(user=user)
        rid = f"AR-B{next(COUNTER):07d}"
        words = MENTION.sub("", command["text"]).split()
        request = {
            "resource": words[0],
            "reason": " ".join(words[1:]),
            "at": int(time.time()),
            "requester": command["user_id"],
            "approvers": approvers,
            "approvals": set(),
            "status": "PENDING",
            "dms": {},
            "posted": asyncio.Event(),  # set once its messages are posted: a click updates them after that
        }
        REQUESTS[rid] = request
        text = (
            f"Request {rid} for *{request['resource']}* is sent to {' and '.join(f'<@{a}>' for a in approvers)}. "
            f"I'll message you when it is decided. `/access-request status {rid}` shows where it stands."
        )
        await ack(text=text, blocks=[{"type": "section", "block_id": "confirmation", "text": mrkdwn(text)}])
        for user in approvers:
            posted = await client.chat_postMessage(
                channel=user,
                text=f"Please review: {summary(rid, request)}",
                blocks=blocks(rid, request, True),
                metadata=metadata(rid, request),
            )
            request["dms"][user] = (posted["channel"], posted["ts"])
        posted = await client.chat_postMessage(
            channel="CNOTIFY",
            text=summary(rid, request),
            blocks=blocks(rid, request, False),
            metadata=metadata(rid, request),
        )
        request["channel"] = (posted["channel"], posted["ts"])
        request["posted"].set()

    @app.action("approve_request")
    async def approve(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        rid, user = body["actions"][0]["value"], body["user"]["id"]
        request = REQUESTS[rid]
        request["approvals"].add(user)
        approved = len(request["approvals"]) == len(request["approvers"])  # by this click (the other may be on its way)
        if approved:
            request["status"] = "APPROVED"
        await ack()
        # The approvers can click as soon as Slack shows their DMs, before this app has their places (or the
        # channel message's) from Slack's answers: wait for those, as the bot's outbox does.
        await request["posted"].wait()
        for approver, (channel, ts) in request["dms"].items():
            await client.chat_update(
                channel=channel,
                ts=ts,
                text=f"Please review: {summary(rid, request)}",
                metadata=metadata(rid, request),
                blocks=blocks(rid, request, request["status"] == "PENDING" and approver not in request["approvals"]),
            )
        channel, ts = request["channel"]
        await client.chat_update(
            channel=channel,
            ts=ts,
            text=summary(rid, request),
            blocks=blocks(rid, request, False),
            metadata=metadata(rid, request),
        )
        text = f"<@{user}> approved {rid}."
        await client.chat_postMessage(
            channel=channel,
            thread_ts=ts,
            text=text,
            blocks=[{"type": "section", "block_id": "decision", "text": mrkdwn(text)}],
            metadata=metadata(rid, request),
        )
        if approved:
            who = " and ".join(f"<@{a}>" for a in request["approvers"])
            text = f":white_check_mark: Your request {rid} for *{request['resource']}* was approved by {who}."
            await client.chat_postMessage(
                channel=request["requester"],
                text=text,
                blocks=[
                    {"type": "section", "block_id": "outcome", "text": mrkdwn(text)},
                    *blocks(rid, request, False)[1:],
                ],
                metadata=metadata(rid, request),
            )

    return app


async def main() -> None:
    web_app = build(aiohttp.ClientSession()).web_app(path="/slack/events")
    web_app.router.add_get("/healthz", lambda _: web.json_response({"ok": True}))
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["PORT"])).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
