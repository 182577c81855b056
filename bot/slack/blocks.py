"""Pure Block Kit builders (slack_sdk.models): a request's state in, blocks and fallback text out."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.domain.values import Status, Verdict
from bot.service_layer.results import Page, RequestView
from bot.slack import text as t

APPROVE, DENY, CANCEL = "approve_request", "deny_request", "cancel_request"
# Slack's JSON for blocks (what slack_sdk.models turn into, checked on the way).
Json = dict[str, Any]
EVENT_TYPE = "access_request"


def metadata(view: RequestView, *, notice: str | None = None) -> Json:
    """The metadata every message about a request carries, so other apps and workflows can react, as Slack's JSON
    (what slack_sdk's ``Metadata(...).to_dict()`` gives: tests/slack/test_blocks.py; it checks nothing, and
    building the object for every call cost more than the rest of this function).
    ``notice`` (the outbox key of a posted message) lets a retry find a message an earlier attempt posted."""
    payload: dict[str, object] = {
        "request_id": view.id,
        "status": view.status.value,
        "resource": t.cut(view.resource, 200),
        "requester": view.requester_id,
        "approvers": [a.user_id for a in view.approvers],
    }
    if notice is not None:
        payload["notice"] = notice
    return {"event_type": EVENT_TYPE, "event_payload": payload}


def summary_text(view: RequestView) -> str:
    """Notification fallback text (escaped: Slack parses it as mrkdwn)."""
    return (
        f"Access request {view.id} from {t.user(view.requester_id)} for {t.safe(view.resource, 200)}: "
        f"{view.status.value.lower()}"
    )


def _summary(view: RequestView) -> list[Block]:
    """Everything about a request."""
    return [*_head(view), *_state(view)]


def _head(view: RequestView) -> list[Block]:
    """The part of the summary a request keeps from its creation on: who asks, for what, why."""
    title, fields, justification = _head_texts(view)
    return [
        HeaderBlock(block_id="title", text=title),
        SectionBlock(block_id="summary", fields=[MarkdownTextObject(text=f) for f in fields]),
        *(SectionBlock(block_id=block_id, text=MarkdownTextObject(text=text)) for block_id, text in justification),
    ]


def _head_texts(view: RequestView) -> tuple[str, list[str], list[tuple[str, str]]]:
    """What ``_head`` shows (and ``_head_fast``, as Slack's JSON): its title, the summary's fields, and each
    justification block's id and text (the justification spans up to 4 blocks, so escaping never cuts it)."""
    others = ", ".join(t.user(a.user_id) for a in view.approvers)
    fields = [
        f"*Requested by*\n{t.user(view.requester_id)}",
        f"*Resource*\n{t.safe(view.resource, 1900)}",
        f"*Duration*\n{t.duration(view.duration_minutes)}",
        f"*Approvers*\n{others}",
    ]
    justification = [
        (f"justification-{i}", ("*Justification*\n" if i == 0 else "") + piece)
        for i, piece in enumerate(t.safe_chunks(view.justification, 2880, most=4))
    ]
    return t.plain(f"Access request {view.id}", HeaderBlock.text_max_length), fields, justification


def _state(view: RequestView) -> list[Block]:
    """The part that changes with each decision: where the request stands."""
    return [
        SectionBlock(block_id="progress", text=MarkdownTextObject(text=progress(view))),
        ContextBlock(block_id="meta", elements=[MarkdownTextObject(text=_meta(view))]),
    ]


def _meta(view: RequestView) -> str:
    return (
        f"{view.id} · {t.status(view.status)} · requested "
        f"<!date^{int(view.created_at.timestamp())}^{{date_short_pretty}} {{time}}|"
        f"{view.created_at:%Y-%m-%d %H:%M} UTC>"
    )


# Request states (and heads) whose JSON is kept. Under a burst the dispatcher serves DMs and outcomes first and
# updates later: at 20 in flight a request's last update came ~250 requests after its first message, so with 256
# kept each head was turned into JSON ~2.5 times and each state ~1.8. With 1024 kept the bot's memory grew 15 MB
# instead of 8 over 10,000 flows (the target is under 20).
SUMMARIES = 512


class _Head:
    """A request state, equal to another of the same request when their ``_head`` is the same."""

    __slots__ = ("key", "view")

    def __init__(self, view: RequestView) -> None:
        self.view = view
        # What ``_head`` renders: the approvers by id (a state read back may know their names, another not).
        approvers = tuple(a.user_id for a in view.approvers)
        self.key = (view.id, view.requester_id, view.resource, view.duration_minutes, approvers, view.justification)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Head) and other.key == self.key


# The blocks every message about a request is made of, as Slack's JSON written out directly: what the Block Kit
# objects above turn into (tests/slack/test_blocks.py compares them for every state and the longest texts), each
# checked against what slack_sdk checks of it (a text's length, a block id's), and built through slack_sdk.models
# when a check fails, which then refuses it as before. Checked object by object, they were ~7% of the bot's CPU
# per flow at 20 in flight (py-spy): a request's three states, its head and each message's metadata and replies.


def mrkdwn_section(block_id: str, text: str) -> Json:
    """``SectionBlock(block_id=block_id, text=MarkdownTextObject(text=text)).to_dict()``."""
    if len(text) > SectionBlock.text_max_length or len(block_id) > Block.block_id_max_length:
        return SectionBlock(block_id=block_id, text=MarkdownTextObject(text=text)).to_dict()
    return {"type": "section", "block_id": block_id, "text": {"type": "mrkdwn", "text": text}}


def _head_fast(view: RequestView) -> list[Json]:
    """``_head`` as Slack's JSON."""
    title, fields, justification = _head_texts(view)
    return [
        {"type": "header", "block_id": "title", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {"type": "section", "block_id": "summary", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        *(mrkdwn_section(block_id, text) for block_id, text in justification),
    ]


def _state_fast(view: RequestView) -> list[Json]:
    """``_state`` as Slack's JSON."""
    return [
        mrkdwn_section("progress", progress(view)),
        {"type": "context", "block_id": "meta", "elements": [{"type": "mrkdwn", "text": _meta(view)}]},
    ]


@lru_cache(maxsize=SUMMARIES)
def _head_json(head: _Head) -> tuple[Json, ...]:
    return tuple(_head_fast(head.view))


@lru_cache(maxsize=SUMMARIES)
def _summary_json(view: RequestView) -> tuple[Json, ...]:
    """``_summary`` as Slack's JSON, kept for the last few request states (its head for the last few requests):
    both approvers' DMs, the channel message and the requester's notice show the same summary of the same state,
    every state of a request the same head, and turning Block Kit objects into JSON (validating them) cost more
    than anything else the bot does per message."""
    return (*_head_json(_Head(view)), *_state_fast(view))


def progress(view: RequestView) -> str:
    lines = []
    for approver in view.approvers:
        decision = view.decision_of(approver.user_id)
        if decision is None:
            state = "has not decided" if view.status is Status.PENDING else "did not decide"
            lines.append(f":white_circle: {t.user(approver.user_id)} {state}")
        elif decision.verdict is Verdict.APPROVE:
            lines.append(f":white_check_mark: {t.user(approver.user_id)} approved")
        else:
            reason = f": {t.safe(decision.reason, 500)}" if decision.reason else ""
            lines.append(f":no_entry: {t.user(approver.user_id)} denied{reason}")
    outcome = {
        Status.PENDING: f"*Pending*: {view.approvals} of {view.required_approvals} approvals",
        Status.APPROVED: "*Approved*",
        Status.DENIED: "*Denied*",
        Status.CANCELLED: f"*Cancelled* by {t.user(view.requester_id)}",
        Status.EXPIRED: "*Expired* without a decision",
    }[view.status]
    return outcome + "\n" + "\n".join(lines)


def decision_buttons(view: RequestView, *, block_id: str = "decide") -> Json:
    """The Approve and Deny buttons of a request, as Slack's JSON: a copy of the one set built and checked through
    slack_sdk.models (``_buttons``), with the request's id and the block's id put in. Both are short (an id is
    11 characters; Slack allows 2000 for a value and 255 for a block id), so what slack_sdk checks holds for every
    copy; checked object by object, the buttons were 5 of the 7 objects of each request on an App Home."""
    template = _buttons_template()
    elements = [{**element, "value": view.id} for element in template["elements"]]
    return {**template, "block_id": block_id, "elements": elements}


@lru_cache(maxsize=1)
def _buttons_template() -> Json:
    return _buttons("AR-TEMPLATE", "decide").to_dict()


def _buttons(request_id: str, block_id: str) -> ActionsBlock:
    return ActionsBlock(
        block_id=block_id,
        elements=[
            ButtonElement(text="Approve", action_id=APPROVE, value=request_id, style="primary"),
            ButtonElement(text="Deny", action_id=DENY, value=request_id, style="danger"),
        ],
    )


def approver_message(view: RequestView, approver_id: str) -> tuple[str, list[Json]]:
    """The DM an approver gets: everything needed to decide, and the buttons while their decision is due."""
    blocks = list(_summary_json(view))
    if view.status is Status.PENDING and view.decision_of(approver_id) is None:
        blocks.append(decision_buttons(view))
    return f"Please review: {summary_text(view)}", blocks


def channel_message(view: RequestView) -> tuple[str, list[Json]]:
    return summary_text(view), list(_summary_json(view))


def decision_reply(view: RequestView, approver_id: str) -> tuple[str, list[Json]]:
    decision = view.decision_of(approver_id)
    assert decision is not None
    verb = "approved" if decision.verdict is Verdict.APPROVE else "denied"
    reason = f"\n>{t.safe(decision.reason, 2900)}" if decision.reason else ""
    text = f"{t.user(approver_id)} {verb} {view.id}.{reason}"
    return text, [mrkdwn_section("decision", text)]


def requester_outcome(view: RequestView) -> tuple[str, list[Json]]:
    if view.status is Status.APPROVED:
        who = " and ".join(t.user(d.approver_id) for d in view.decisions)
        head = f":white_check_mark: Your request {view.id} for *{t.safe(view.resource, 1000)}* was approved by {who}."
    elif view.status is Status.EXPIRED:
        head = (
            f":alarm_clock: Your request {view.id} for *{t.safe(view.resource, 1000)}* expired before both approvers "
            "decided. Ask again with `/access-request` if you still need it."
        )
    else:
        denial = view.denial
        assert denial is not None
        reason = f"\n>{t.safe(denial.reason, 1500)}" if denial.reason else "\nNo reason was given."
        head = (
            f":no_entry: Your request {view.id} for *{t.safe(view.resource, 1000)}* was denied by "
            f"{t.user(denial.approver_id)}.{reason}"
        )
    return head, [
        mrkdwn_section("outcome", head),
        *_summary_json(view)[1:],
    ]


def confirmation(view: RequestView) -> tuple[str, list[Json]]:
    who = " and ".join(t.user(a.user_id) for a in view.approvers)
    text = (
        f"Request {view.id} for *{t.safe(view.resource, 1000)}* is sent to {who}. "
        f"I'll message you when it is decided. `/access-request status {view.id}` shows where it stands."
    )
    return text, [mrkdwn_section("confirmation", text)]


def notice(message: str) -> tuple[str, list[Block]]:
    """An answer for one person: an error or a result. ``message`` is ours (it may hold escaped user text)."""
    return message, [SectionBlock(block_id="notice", text=MarkdownTextObject(text=t.cut(message, 3000)))]


def status_card(view: RequestView) -> tuple[str, list[Block]]:
    return summary_text(view), _summary(view)


def request_line(view: RequestView) -> str:
    return (
        f"`{view.id}` *{t.safe(view.resource, 300)}* · {t.status(view.status)} · from "
        f"{t.user(view.requester_id)} · {view.created_at:%Y-%m-%d}"
    )


def request_list(title: str, page: Page, command: str) -> tuple[str, list[Block]]:
    blocks: list[Block] = [HeaderBlock(block_id="title", text=t.plain(title, 150))]
    if not page.items:
        blocks.append(SectionBlock(block_id="empty", text=MarkdownTextObject(text="Nothing here.")))
    for i, view in enumerate(page.items):
        blocks.append(SectionBlock(block_id=f"r{i}", text=MarkdownTextObject(text=request_line(view))))
    total = f"{page.total:,}{'+' if page.at_least else ''}"
    footer = f"Page {page.page} of {page.pages}{'+' if page.at_least else ''} · {total} in all"
    if page.page < page.pages:
        footer += f" · next: `/access-request {command} {page.page + 1}`"
    blocks.append(ContextBlock(block_id="pages", elements=[MarkdownTextObject(text=footer)]))
    return f"{title}: {total}", blocks


def help_message(usage: str) -> tuple[str, list[Block]]:
    text = (
        "*Ask for access*: `/access-request prod-db @alice @bob for 4h Investigating incident 42`\n"
        "Both approvers get a message with Approve and Deny. Two approvals approve it; one denial denies it.\n"
        "`/access-request` alone opens a form.\n\n" + usage
    )
    return "How to use /access-request", [SectionBlock(block_id="help", text=MarkdownTextObject(text=text))]


def divider() -> DividerBlock:
    return DividerBlock()


def section(block_id: str, text: str, accessory: ButtonElement | None = None) -> SectionBlock:
    return SectionBlock(block_id=block_id, text=MarkdownTextObject(text=text), accessory=accessory)


def as_dicts(blocks: Sequence[Block | Json]) -> list[Json]:
    return [b if isinstance(b, dict) else b.to_dict() for b in blocks]
