"""Block Kit JSON the bot builds without checking each object through slack_sdk.models is what slack_sdk builds
and accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock
from slack_sdk.models.metadata import Metadata
from slack_sdk.models.views import View

from bot.domain.model import AccessRequest
from bot.domain.values import Approver, Policy, Verdict
from bot.service_layer.results import RequestView
from bot.service_layer.services import new_request_id
from bot.slack import blocks as b
from bot.slack import forms


def _view(n: int, request_id: str | None = None) -> RequestView:
    request = AccessRequest.create(
        id=request_id or new_request_id(),
        requester_id=f"UREQ{n}",
        resource=f"db-{n} <!channel> & more",
        justification="incident <#C1> " * 40,
        approvers=[Approver("UALICE"), Approver("UBOB")],
        now=datetime.now(UTC),
        policy=Policy(),
    )
    return RequestView.of(request)


def test_decision_buttons_are_what_slack_sdk_builds_for_each_request() -> None:
    for n in range(200):
        view = _view(n)
        for block_id in ("decide", f"decide-{view.id}"):
            assert b.decision_buttons(view, block_id=block_id) == b._buttons(view.id, block_id).to_dict()


def test_the_app_home_is_a_view_slack_sdk_accepts_as_it_is() -> None:
    todo, mine = [_view(n) for n in range(forms.HOME_TODO_LIMIT + 1)], [_view(n) for n in range(20)]
    home = forms.home(todo=todo, mine=mine, mine_total=40, notice="You chose to approve <@UX>'s request.")
    # slack_sdk reads the JSON back into its objects, checks every one and writes it out again: unchanged.
    assert View(**home).to_dict() == home
    values = [e["value"] for block in home["blocks"] if block["type"] == "actions" for e in block["elements"]]
    assert values == [v.id for v in todo[: forms.HOME_TODO_LIMIT] for _ in ("approve", "deny")]


def _request(n: int, resource: str, justification: str, minutes: int | None, now: datetime) -> AccessRequest:
    return AccessRequest.create(
        id=new_request_id(),
        requester_id=f"UREQ{n}",
        resource=resource,
        justification=justification[: Policy().max_justification_length],
        approvers=[Approver("UALICE"), Approver("UBOB")],
        now=now,
        policy=Policy(),
        duration_minutes=minutes,
    )


def _states() -> list[RequestView]:
    """A request in each state it can show, with the longest and most awkward texts a person can type."""
    now = datetime.now(UTC)
    long = "<!channel> & <@U1> " * 300  # past every limit, escaped
    texts = [("db", "why", None), ("db <!here>", "incident " * 40, 240), ("x" * 200, long[:2000], 90)]
    views = []
    for n, (resource, justification, minutes) in enumerate([*texts, ("&<>" * 66, long, 1)]):
        pending = _request(n, resource, justification, minutes, now)
        views.append(RequestView.of(pending))
        pending.decide(approver_id="UALICE", verdict=Verdict.APPROVE, reason=None, now=now)
        views.append(RequestView.of(pending))
        pending.decide(approver_id="UBOB", verdict=Verdict.APPROVE, reason=None, now=now)
        views.append(RequestView.of(pending))
        denied = _request(n, resource, justification, minutes, now)
        denied.decide(approver_id="UBOB", verdict=Verdict.DENY, reason=long[:500], now=now)
        views.append(RequestView.of(denied))
        cancelled = _request(n, resource, justification, minutes, now)
        cancelled.cancel(by=cancelled.requester_id, now=now)
        views.append(RequestView.of(cancelled))
        expired = _request(n, resource, justification, minutes, now)
        expired.expire(now=now + timedelta(days=30))
        views.append(RequestView.of(expired))
    return views


def test_every_message_about_a_request_is_what_slack_sdk_builds_for_it() -> None:
    for view in _states():
        summary = [block.to_dict() for block in b._summary(view)]
        assert list(b._summary_json(view)) == summary
        assert b.channel_message(view) == (b.summary_text(view), summary)
        for approver in ("UALICE", "UBOB"):
            text, blocks = b.approver_message(view, approver)
            assert blocks[: len(summary)] == summary
        for approver in [d.approver_id for d in view.decisions]:
            text, blocks = b.decision_reply(view, approver)
            assert blocks == [SectionBlock(block_id="decision", text=MarkdownTextObject(text=text)).to_dict()]
        if view.status.is_terminal and view.status.value != "CANCELLED":
            text, blocks = b.requester_outcome(view)
            assert blocks == [
                SectionBlock(block_id="outcome", text=MarkdownTextObject(text=text)).to_dict(),
                *summary[1:],
            ]
        text, blocks = b.confirmation(view)
        assert blocks == [SectionBlock(block_id="confirmation", text=MarkdownTextObject(text=text)).to_dict()]
        payload = {
            "request_id": view.id,
            "status": view.status.value,
            "resource": view.resource,  # at most 200 characters (Policy), so never cut
            "requester": view.requester_id,
            "approvers": ["UALICE", "UBOB"],
        }
        assert b.metadata(view) == Metadata(event_type="access_request", event_payload=payload).to_dict()
        assert b.metadata(view, notice="k")["event_payload"] == {**payload, "notice": "k"}


def test_a_text_past_slacks_limit_is_refused_as_slack_sdk_refuses_it() -> None:
    assert b.mrkdwn_section("decision", "x" * 3000)["text"]["text"] == "x" * 3000
    with pytest.raises(SlackObjectFormationError, match="3000"):
        b.mrkdwn_section("decision", "x" * 3001)
    with pytest.raises(SlackObjectFormationError, match="block_id"):
        b.mrkdwn_section("d" * 256, "x")
