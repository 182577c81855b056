"""What each domain event owes people in Slack, as outbox notices (delivered later, exactly once each)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.domain import events
from bot.domain.model import AccessRequest
from bot.domain.values import Status

# Actions, grouped by the target whose messages they touch; one target's notices are delivered in order.
POST_DM, UPDATE_DM = "post_dm", "update_dm"
POST_CHANNEL, UPDATE_CHANNEL, POST_REPLY = "post_channel", "update_channel", "post_reply"
POST_OUTCOME, POST_CONFIRMATION, POST_PROBLEM = "post_outcome", "post_confirmation", "post_problem"
CHANNEL, REQUESTER = "channel", "requester"
# In an update's details: the DM updated is the one whose approver has just decided (and is looking at it).
DECIDER = "decider"


@dataclass(frozen=True)
class Notice:
    dedupe_key: str
    request_id: str
    target: str
    action: str
    subject: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def dm_target(user_id: str) -> str:
    return f"dm:{user_id}"


def post_key(request_id: str, purpose: str) -> str:
    """The key of the notice that posts a request's message for ``purpose`` (``dm:U123``, ``channel``)."""
    return f"{request_id}:post:{purpose}"


def for_events(found: Iterable[events.Event], requests: dict[str, AccessRequest]) -> list[Notice]:
    """The notices a unit of work's events owe, deduplicated (one update per message per state)."""
    notices: dict[str, Notice] = {}
    for event in found:
        request = requests[event.request_id]
        for notice in _for_event(event, request):
            notices.setdefault(notice.dedupe_key, notice)
    return list(notices.values())


def _for_event(event: events.Event, request: AccessRequest) -> list[Notice]:
    rid = request.id
    if isinstance(event, events.RequestCreated):
        return [
            *(
                Notice(post_key(rid, dm_target(a.user_id)), rid, dm_target(a.user_id), POST_DM, a.user_id)
                for a in request.approvers
            ),
            Notice(post_key(rid, CHANNEL), rid, CHANNEL, POST_CHANNEL),
        ]
    state = f"{len(request.decisions)}:{request.status.value}"
    decider = event.approver_id if isinstance(event, events.DecisionRecorded) else None
    updates = [
        *(
            Notice(
                f"{rid}:update:dm:{a.user_id}:{state}",
                rid,
                dm_target(a.user_id),
                UPDATE_DM,
                a.user_id,
                {DECIDER: True} if a.user_id == decider else {},
            )
            for a in request.approvers
        ),
        Notice(f"{rid}:update:channel:{state}", rid, CHANNEL, UPDATE_CHANNEL),
    ]
    if isinstance(event, events.DecisionRecorded):
        return [*updates, Notice(f"{rid}:post:reply:{event.approver_id}", rid, CHANNEL, POST_REPLY, event.approver_id)]
    if isinstance(event, events.StatusChanged):
        if event.new in (Status.APPROVED, Status.DENIED, Status.EXPIRED):
            return [*updates, Notice(f"{rid}:post:outcome", rid, REQUESTER, POST_OUTCOME)]
        return updates
    return []


def confirmation(request_id: str) -> Notice:
    return Notice(f"{request_id}:post:confirmation", request_id, REQUESTER, POST_CONFIRMATION)


def problem(request_id: str, about: str, text: str) -> Notice:
    """Tell the requester that a notice could not be delivered (e.g. an approver cannot be messaged)."""
    return Notice(f"{request_id}:problem:{about}", request_id, REQUESTER, POST_PROBLEM, about, {"text": text})
